"""The shared compression core: stage data, students, the method interface, pruning, losses, loops."""

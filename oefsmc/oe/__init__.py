"""OE-FSMC (Sec. 4.2-4.3): OOD-rebalanced compression and fine-tuning as an add-on to any method."""
from .complementary import complementary_distribution, label_prior, ood_class_weights  # noqa: F401
from .variants import VARIANTS, Variant  # noqa: F401

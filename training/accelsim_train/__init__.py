"""accelsim training companion: quantization bit-exact with the Rust simulator, QAT with the straight-through
estimator, weight clipping, RandBET (random bit error training), export to accelsim model files, and evaluation
(clean / robust error, fault-pattern replay). See docs/training.md and ../shared/domain.md §1.2-§1.4, §3."""

__version__ = "0.1.0"

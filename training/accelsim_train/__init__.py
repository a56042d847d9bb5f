"""accelsim training companion: quantization bit-exact with the Rust simulator, QAT with the straight-through
estimator, weight clipping, RandBET (random bit error training), export to accelsim model files, and evaluation
(clean / robust error, fault-pattern replay). See docs/training.md (and docs/references.md for the sources)."""

__version__ = "0.1.0"

//! `quant` module (see docs/ and the module docs inside).

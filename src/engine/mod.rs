//! `engine` module (see docs/ and the module docs inside).

//! Reading and writing NumPy `.npy` files (format version 1.0/2.0, little-endian, C order).

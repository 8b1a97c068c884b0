//! edgec library.

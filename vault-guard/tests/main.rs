//! The guard's flows on a real vault file: what a front end gets by calling
//! them, without adding anything of its own.

mod leak;

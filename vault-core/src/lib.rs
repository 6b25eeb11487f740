//! vault-core

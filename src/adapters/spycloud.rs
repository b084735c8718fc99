//! SpyCloud Enterprise API over reqwest.

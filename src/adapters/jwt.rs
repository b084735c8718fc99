//! Bearer tokens verified as RS256 JWTs against the JWKS of an allow-listed host.

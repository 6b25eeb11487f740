//! Passphrase -> key-encryption key with Argon2id (RFC 9106). Parameters live
//! in the vault header so they can be raised later; every derivation checks
//! them against a floor (RFC 9106 s4, second recommendation: 64 MiB, t=3) and
//! a ceiling (so an edited header cannot make unlocking hang or exhaust memory).

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::secret::Key256;

/// Argon2id cost parameters as stored in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (m).
    pub memory_kib: u32,
    /// Passes over memory (t).
    pub iterations: u32,
    /// Degree of parallelism (p).
    pub lanes: u32,
}

impl KdfParams {
    /// RFC 9106 s4's second recommended option; the least `vault` accepts.
    pub const FLOOR: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        lanes: 4,
    };

    /// The most an unlock will attempt: 4 GiB, t=10, p=16.
    pub const CEILING: KdfParams = KdfParams {
        memory_kib: 4 * 1024 * 1024,
        iterations: 10,
        lanes: 16,
    };

    /// Cheap parameters for this crate's own unit tests. Not reachable from any
    /// other build: the floor check below only relaxes under `cfg(test)`.
    #[cfg(test)]
    pub(crate) const TEST_ONLY: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        lanes: 1,
    };

    /// Refuses parameters below the floor or above the ceiling.
    ///
    /// # Errors
    /// [`Error::WeakKdf`] naming the bound crossed.
    pub fn check(&self) -> Result<()> {
        let floor = if cfg!(test) {
            KdfParams {
                memory_kib: 8,
                iterations: 1,
                lanes: 1,
            }
        } else {
            Self::FLOOR
        };
        let ceiling = Self::CEILING;
        let weak = |reason: String| Err(Error::WeakKdf { reason });
        if self.memory_kib < floor.memory_kib {
            return weak(format!(
                "memory {} KiB is below the floor of {} KiB (RFC 9106)",
                self.memory_kib, floor.memory_kib
            ));
        }
        if self.iterations < floor.iterations {
            return weak(format!(
                "time cost {} is below the floor of {} (RFC 9106)",
                self.iterations, floor.iterations
            ));
        }
        if self.lanes < 1 {
            return weak("parallelism must be at least 1".into());
        }
        if self.memory_kib > ceiling.memory_kib
            || self.iterations > ceiling.iterations
            || self.lanes > ceiling.lanes
        {
            return weak(format!(
                "parameters above the ceiling (m <= {} KiB, t <= {}, p <= {})",
                ceiling.memory_kib, ceiling.iterations, ceiling.lanes
            ));
        }
        if self.memory_kib < 8 * self.lanes {
            return weak("memory must be at least 8 KiB per lane".into());
        }
        Ok(())
    }

    /// These parameters, raised where they are below [`Self::FLOOR`] (a
    /// passphrase change keeps the vault's cost, never less than the floor).
    pub fn raised_to_floor(self) -> KdfParams {
        KdfParams {
            memory_kib: self.memory_kib.max(Self::FLOOR.memory_kib),
            iterations: self.iterations.max(Self::FLOOR.iterations),
            lanes: self.lanes,
        }
    }

    /// Picks parameters that take about `target` on this machine: starts at
    /// the floor, measures, and scales memory (never below the floor, never
    /// above `max_memory_kib`).
    ///
    /// # Errors
    /// Fails only if Argon2 itself fails.
    pub fn calibrate(target: Duration, max_memory_kib: u32) -> Result<KdfParams> {
        let floor = Self::FLOOR;
        let start = Instant::now();
        let key = derive_kek(b"calibration", &[0u8; 16], &floor)?;
        drop(key);
        let took = start.elapsed().as_secs_f64().max(1e-3);
        let scale = target.as_secs_f64() / took;
        let mib = ((floor.memory_kib as f64 / 1024.0) * scale) as u32;
        // round down to 8 MiB steps; clamp into [floor, max]
        let mib = (mib / 8 * 8).max(floor.memory_kib / 1024);
        let memory_kib = (mib.saturating_mul(1024)).min(max_memory_kib.max(floor.memory_kib));
        Ok(KdfParams {
            memory_kib,
            ..floor
        })
    }
}

/// Derives the 256-bit KEK from a passphrase and salt.
///
/// # Errors
/// [`Error::WeakKdf`] when the parameters are out of bounds (checked before any work).
pub(crate) fn derive_kek(passphrase: &[u8], salt: &[u8], params: &KdfParams) -> Result<Key256> {
    params.check()?;
    let argon_params = Params::new(params.memory_kib, params.iterations, params.lanes, Some(32))
        .map_err(|e| Error::WeakKdf {
            reason: e.to_string(),
        })?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| Error::WeakKdf {
            reason: e.to_string(),
        })?;
    let key = Key256::from_array(out);
    // clear intermediates
    out.zeroize();
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9106 s5.3: the Argon2id test vector (m=32 KiB, t=3, p=4, with
    /// secret and associated data), pinning the primitive our KEK rests on.
    #[test]
    fn argon2id_rfc9106_vector() {
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .data(argon2::AssociatedData::new(&[4u8; 12]).unwrap())
            .output_len(32)
            .build()
            .unwrap();
        let argon = Argon2::new_with_secret(&[3u8; 8], Algorithm::Argon2id, Version::V0x13, params)
            .unwrap();
        let mut out = [0u8; 32];
        argon
            .hash_password_into(&[1u8; 32], &[2u8; 16], &mut out)
            .unwrap();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
    }

    #[test]
    fn floor_and_ceiling_are_enforced() {
        assert!(KdfParams::FLOOR.check().is_ok());
        assert!(KdfParams::CEILING.check().is_ok());
        let too_big = KdfParams {
            memory_kib: KdfParams::CEILING.memory_kib + 1,
            ..KdfParams::FLOOR
        };
        assert!(matches!(too_big.check(), Err(Error::WeakKdf { .. })));
        let too_many = KdfParams {
            iterations: 11,
            ..KdfParams::FLOOR
        };
        assert!(too_many.check().is_err());
    }

    #[test]
    fn different_salt_or_passphrase_gives_different_keys() {
        let p = KdfParams::TEST_ONLY;
        let a = derive_kek(b"pw", &[1; 16], &p).unwrap();
        let b = derive_kek(b"pw", &[2; 16], &p).unwrap();
        let c = derive_kek(b"pw2", &[1; 16], &p).unwrap();
        let a2 = derive_kek(b"pw", &[1; 16], &p).unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), c.expose_secret());
        assert_eq!(a.expose_secret(), a2.expose_secret());
    }

    #[test]
    fn raised_to_floor_lifts_only_what_is_below_it() {
        let low = KdfParams {
            memory_kib: 8,
            iterations: 1,
            lanes: 4,
        };
        let r = low.raised_to_floor();
        assert_eq!(
            (r.memory_kib, r.iterations, r.lanes),
            (KdfParams::FLOOR.memory_kib, KdfParams::FLOOR.iterations, 4)
        );
        let high = KdfParams {
            memory_kib: KdfParams::FLOOR.memory_kib * 2,
            ..r
        };
        assert_eq!(
            high.raised_to_floor().memory_kib,
            KdfParams::FLOOR.memory_kib * 2
        );
    }
}

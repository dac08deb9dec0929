//! Which WIT version a component was built against, and whether this host
//! serves it.
//!
//! Matching follows semver as wasmtime's linker does: `0.x` versions are
//! compatible within a minor version, `1.x` and later within a major one.
//! A component built against 0.2.3 is served by the 0.2.0 bindings (a
//! patch release only fixes documentation; anything it added that the host
//! lacks fails at link time, naming the import). A version whose table
//! entry is not yet released is only accepted when the operator asks for
//! it, so a component built against a contract still being designed never
//! installs by accident.

use semver::Version;

use crate::plugins::LoadError;

/// The versions this host has bindings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WitVersion {
    V0_1,
    V0_2,
}

struct Known {
    wit: WitVersion,
    version: Version,
    released: bool,
}

fn known() -> [Known; 2] {
    [
        Known {
            wit: WitVersion::V0_1,
            version: Version::new(0, 1, 0),
            released: true,
        },
        Known {
            wit: WitVersion::V0_2,
            version: Version::new(0, 2, 0),
            released: true,
        },
    ]
}

/// "0.1.x, 0.2.x", for error messages.
pub fn supported() -> String {
    known()
        .iter()
        .filter(|k| k.released)
        .map(|k| format!("{}.{}.x", k.version.major, k.version.minor))
        .collect::<Vec<_>>()
        .join(", ")
}

fn compatible(a: &Version, b: &Version) -> bool {
    a.major == b.major && (a.major > 0 || a.minor == b.minor)
}

/// The bindings that serve a component built against `found`.
pub fn resolve(found: &str, allow_unreleased: bool) -> Result<WitVersion, LoadError> {
    let unsupported = || LoadError::UnsupportedVersion {
        found: found.to_string(),
        supported: supported(),
    };
    let version = Version::parse(found).map_err(|_| unsupported())?;
    let entry = known()
        .into_iter()
        .find(|k| compatible(&k.version, &version))
        .ok_or_else(unsupported)?;
    let unreleased = !entry.released || !version.pre.is_empty();
    if unreleased && !allow_unreleased {
        return Err(LoadError::UnreleasedVersion(found.to_string()));
    }
    Ok(entry.wit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_by_semver_range() {
        assert_eq!(resolve("0.1.0", false).unwrap(), WitVersion::V0_1);
        assert_eq!(resolve("0.2.0", false).unwrap(), WitVersion::V0_2);
        assert_eq!(resolve("0.2.7", false).unwrap(), WitVersion::V0_2);
        for bad in ["0.3.0", "1.0.0", "0.0.9", "latest", ""] {
            let err = resolve(bad, false).unwrap_err();
            assert!(
                matches!(err, LoadError::UnsupportedVersion { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("0.1.x, 0.2.x"), "{err}");
        }
    }

    #[test]
    fn a_version_in_development_needs_the_flag() {
        let err = resolve("0.2.1-dev", false).unwrap_err();
        assert!(matches!(err, LoadError::UnreleasedVersion(_)), "{err}");
        assert_eq!(resolve("0.2.1-dev", true).unwrap(), WitVersion::V0_2);
    }
}

//! The schema's migrations, compiled into the binary.
//!
//! `sqlx::migrate!()` would embed them too, but it needs sqlx's `macros`
//! feature, which compiles sqlx (and SQLite's C source) a second time for
//! the proc-macro: minutes of a cold build for eight files. This source
//! gives the migrator the same migrations with the same checksums (SHA-384
//! of the SQL, computed by [`Migration::new`]), so databases migrated by
//! earlier builds are recognised as they are.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

/// `(version, description, SQL)`, in order. A new migration is a new file
/// in `host/migrations/` and a line here (a test checks they agree).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "sessions server",
        include_str!("../../migrations/0002_sessions_server.sql"),
    ),
    (
        3,
        "scoped images and usage",
        include_str!("../../migrations/0003_scoped_images_and_usage.sql"),
    ),
    (
        4,
        "session settings",
        include_str!("../../migrations/0004_session_settings.sql"),
    ),
    (
        5,
        "session cost",
        include_str!("../../migrations/0005_session_cost.sql"),
    ),
    (6, "fleet", include_str!("../../migrations/0006_fleet.sql")),
    (
        7,
        "fleet plugins",
        include_str!("../../migrations/0007_fleet_plugins.sql"),
    ),
    (
        8,
        "fleet capacity",
        include_str!("../../migrations/0008_fleet_capacity.sql"),
    ),
    (
        9,
        "snapshots",
        include_str!("../../migrations/0009_snapshots.sql"),
    ),
    (
        10,
        "fleet holdings",
        include_str!("../../migrations/0010_fleet_holdings.sql"),
    ),
];

/// The migrations above, for `Migrator::new`.
#[derive(Debug)]
pub(super) struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// Every file in `host/migrations/` is listed, under its own number
    /// and with its own text.
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<(i64, String)> = std::fs::read_dir(&dir)
            .expect("host/migrations is readable")
            .map(|entry| {
                let path = entry.expect("a directory entry").path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let version = name.split('_').next().unwrap().parse().unwrap();
                (version, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        files.sort();
        let embedded: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|&(v, _, sql)| (v, sql.to_string()))
            .collect();
        assert_eq!(files, embedded);
    }
}

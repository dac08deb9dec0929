//! A PostgreSQL database of a test's own. Test suites run side by side
//! (scripts/run-tests.py), and a host recovers the sessions it finds running at
//! start, so two hosts on one shared database would pause each other's
//! sessions. Every host under test therefore gets a fresh database.

use sqlx::Connection as _;

use super::server::{postgres_url, unique};

/// A fresh database on the test server, dropped (connections and all) by
/// `drop_now`, or at the latest when it is dropped.
pub struct Database {
    pub url: String,
    name: Option<String>,
}

impl Database {
    pub async fn create() -> Self {
        let admin = postgres_url();
        let name = unique("agenthost_test").replace('-', "_");
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is reachable (scripts/setup.sh starts it)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("the test role may create databases (scripts/setup.sh grants it)");
        let base = admin.rsplit_once('/').expect("a database in the URL").0;
        Self {
            url: format!("{base}/{name}"),
            name: Some(name),
        }
    }

    pub async fn drop_now(mut self) {
        if let Some(name) = self.name.take() {
            drop_database(&name).await;
        }
    }
}

impl Drop for Database {
    /// A test that panicked, or a value dropped inside a runtime, still
    /// removes its database: on a thread of its own, with its own runtime.
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the drop")
                    .block_on(drop_database(&name))
            })
            .join();
        }
    }
}

async fn drop_database(name: &str) {
    let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_url()).await else {
        return;
    };
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

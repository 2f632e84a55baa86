//! Tenants, credentials, aliases, settings and single-use grants.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::rows::*;
use super::SqlMetaStore;
use crate::meta::*;
use crate::model::*;

#[async_trait]
impl IdentityStore for SqlMetaStore {
    async fn create_tenant(&self, t: TenantRecord) -> StoreResult<()> {
        self.write(move |txn| {
            let n = exec(
                txn,
                "INSERT INTO tenants(name, created) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
                params![t.name, t.created_ms],
            )
            .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Exists);
            }
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, name: &str) -> StoreResult<Option<TenantRecord>> {
        let name = name.to_owned();
        self.lookup(move |c| {
            query_one(c, "SELECT name, created FROM tenants WHERE name = ?1", params![name], |r| {
                Ok(TenantRecord { name: r.get(0)?, created_ms: r.get(1)? })
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        self.read(move |c| {
            c.query_map("SELECT name, created FROM tenants ORDER BY name", &[], |r| {
                Ok(TenantRecord { name: r.get(0)?, created_ms: r.get(1)? })
            })
            .map_err(backend)
        })
        .await
    }

    async fn put_credential(&self, c: CredentialRecord) -> StoreResult<()> {
        self.write(move |txn| {
            exec(txn, &format!(
                    "INSERT INTO credentials({CREDENTIAL_COLS}) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)
                     ON CONFLICT(access_key) DO UPDATE SET secret=?2, tenant=?3, kind=?4, expires=?6, scope=?7, label=?8"
                ),
                params![c.access_key, c.secret, c.tenant, c.kind.as_str(), c.created_ms, c.expires_ms, c.scope, c.label],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_credential(&self, access_key: &str) -> StoreResult<Option<CredentialRecord>> {
        let ak = access_key.to_owned();
        self.lookup(move |c| {
            c.query_row(
                &format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE access_key = ?1"),
                params![ak],
                credential_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_credentials(&self, filter: CredentialFilter) -> StoreResult<Vec<CredentialRecord>> {
        self.read(move |c| {
            c.query_map(&format!(
                    "SELECT {CREDENTIAL_COLS} FROM credentials
                     WHERE (CAST(?1 AS TEXT) IS NULL OR tenant = ?1) AND (CAST(?2 AS TEXT) IS NULL OR kind = ?2) ORDER BY access_key"
                ), params![filter.tenant, filter.kind.map(|k| k.as_str())], credential_from_row).map_err(backend)
        })
        .await
    }

    async fn delete_credential(&self, access_key: &str) -> StoreResult<bool> {
        let ak = access_key.to_owned();
        self.write(move |txn| {
            let n = exec(txn, "DELETE FROM credentials WHERE access_key = ?1", params![ak]).map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    fn credential_changes(&self) -> Option<tokio::sync::broadcast::Receiver<Option<String>>> {
        self.postgres().map(|pg| pg.credential_changes())
    }

    async fn purge_expired_credentials(&self, kinds: &[CredentialKind], cutoff_ms: i64) -> StoreResult<u64> {
        let kinds: Vec<&'static str> = kinds.iter().map(|k| k.as_str()).collect();
        self.write(move |txn| {
            let mut n = 0;
            for kind in &kinds {
                n += exec(
                    txn,
                    "DELETE FROM credentials WHERE kind = ?1 AND expires IS NOT NULL AND expires < ?2",
                    params![kind, cutoff_ms],
                )
                .map_err(backend)?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn claim_alias(&self, kind: &str, alias: &str, tenant: &str) -> StoreResult<String> {
        let (kind, alias, tenant) = (kind.to_owned(), alias.to_owned(), tenant.to_owned());
        self.write(move |txn| {
            let have: Option<String> = query_one(
                txn,
                "SELECT alias FROM aliases WHERE kind = ?1 AND tenant = ?2",
                params![kind, tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
            if let Some(a) = have {
                return Ok(a);
            }
            let n = exec(
                txn,
                "INSERT INTO aliases(kind, alias, tenant) VALUES(?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![kind, alias, tenant],
            )
            .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Exists);
            }
            Ok(alias.clone())
        })
        .await
    }

    async fn alias_of(&self, kind: &str, tenant: &str) -> StoreResult<Option<String>> {
        let (kind, tenant) = (kind.to_owned(), tenant.to_owned());
        self.lookup(move |c| {
            query_one(c, "SELECT alias FROM aliases WHERE kind = ?1 AND tenant = ?2", params![kind, tenant], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn resolve_alias(&self, kind: &str, alias: &str) -> StoreResult<Option<String>> {
        let (kind, alias) = (kind.to_owned(), alias.to_owned());
        self.lookup(move |c| {
            query_one(c, "SELECT tenant FROM aliases WHERE kind = ?1 AND alias = ?2", params![kind, alias], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl SettingStore for SqlMetaStore {
    async fn setting_or_init(&self, name: &str, init: String) -> StoreResult<String> {
        let name = name.to_owned();
        self.write(move |txn| {
            exec(txn, "INSERT INTO settings(name, value) VALUES(?1, ?2) ON CONFLICT DO NOTHING", params![name, init])
                .map_err(backend)?;
            query_one(txn, "SELECT value FROM settings WHERE name = ?1", params![name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn get_setting(&self, name: &str) -> StoreResult<Option<String>> {
        let name = name.to_owned();
        self.lookup(move |c| {
            query_one(c, "SELECT value FROM settings WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn put_settings(&self, pairs: Vec<(String, String)>) -> StoreResult<()> {
        self.write(move |txn| {
            for (name, value) in &pairs {
                exec(
                    txn,
                    "INSERT INTO settings(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = ?2",
                    params![name, value],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl GrantStore for SqlMetaStore {
    async fn create_grant(&self, g: GrantRecord) -> StoreResult<()> {
        self.write(move |txn| {
            let n = exec(
                txn,
                "INSERT INTO grants(kind, id, payload, expires, used) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![g.kind.as_str(), g.id, g.payload, g.expires_ms, g.used],
            )
            .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::Exists);
            }
            Ok(())
        })
        .await
    }

    async fn get_grant(&self, kind: GrantKind, id: &str) -> StoreResult<Option<GrantRecord>> {
        let id = id.to_owned();
        self.lookup(move |c| {
            query_one(
                c,
                "SELECT id, payload, expires, used FROM grants WHERE kind = ?1 AND id = ?2",
                params![kind.as_str(), id],
                |r| grant_from_row(r, kind),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn redeem_grant(&self, kind: GrantKind, id: &str) -> StoreResult<Option<GrantRecord>> {
        let id = id.to_owned();
        self.write(move |txn| {
            let before = query_one(
                txn,
                "SELECT id, payload, expires, used FROM grants WHERE kind = ?1 AND id = ?2",
                params![kind.as_str(), id],
                |r| grant_from_row(r, kind),
            )
            .optional()
            .map_err(backend)?;
            if before.as_ref().is_some_and(|g| !g.used) {
                exec(txn, "UPDATE grants SET used = 1 WHERE kind = ?1 AND id = ?2", params![kind.as_str(), id])
                    .map_err(backend)?;
            }
            Ok(before)
        })
        .await
    }

    async fn purge_grants(&self, cutoff_ms: i64) -> StoreResult<u64> {
        self.write(move |txn| {
            let n = exec(txn, "DELETE FROM grants WHERE expires < ?1", params![cutoff_ms]).map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}

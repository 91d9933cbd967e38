//! The directory provider: a tenant folder ([`crate::fixture`]) served the
//! way Microsoft Graph serves a tenant, with writes going to its overlay.
//!
//! How it behaves, and why:
//!
//! - **Memory, refreshed from disk.** The folder is read once into memory
//!   ([`TenantData::load`]); every call first compares the overlay file of
//!   the collection it touches with what was loaded (length, modification
//!   time, inode) and re-reads it when another provider — in this process
//!   or another one — has written it since. So two connections to the same
//!   folder never serve each other stale data for long, and never lose
//!   each other's writes.
//! - **Paging like Graph.** The settings catalog list and a policy's
//!   settings come in pages of 25, as Graph sends them; every other list
//!   and navigation collection in pages of [`DEFAULT_PAGE_SIZE`] (Graph's
//!   Intune collections answer up to 1000 items a page). [`PageSizes`]
//!   changes both, so tests can page small collections. A cursor is
//!   opaque (base64 of the collection, the offset, the collection's
//!   generation and this connection's nonce) and pages the collection *as
//!   it was* on the first page: a write between two pages never shifts an
//!   item out of the list (no silent gap), as long as the collection has
//!   not changed more than [`SNAPSHOTS_KEPT`] times since.
//! - **Reads as Graph must be read.** [`TenantProvider::get`] reads each
//!   kind of navigation data the way Graph needs it read — settings page
//!   by page and counted against `settingCount`, definition values then
//!   each one's presentation values, apps through the per-platform
//!   collection — and each of those requests meets the folder's
//!   `faults.json` under the path and method the Graph request has, so one
//!   `faults.json` means the same thing here and in the local Graph.
//! - **Writes like Graph.** Bodies holding read-only properties, unknown
//!   `@odata.type`s or writes to read-only types are refused as Graph
//!   refuses them; created objects get a new id and timestamps; nested
//!   navigation items get the ids Graph would give them. A write rewrites
//!   that collection's file in the overlay folder atomically (temporary
//!   file, fsync, rename) and never touches the tenant folder itself.
//!   Writes are serialized per folder (a process-wide lock plus an
//!   advisory file lock in the overlay on Unix) and re-read the freshest
//!   collection first, so concurrent writers cannot lose updates.
//! - **Permissions.** `tenant.json`'s `grantedPermissions` are enforced as
//!   a token's `roles` would be: a read needs the type's read permission
//!   (or its ReadWrite), a write its write permission.
//!
//! The requests each call stands for — what a `faults.json` rule's `path`
//! and `method` match (a rule matches its path and every path below it):
//!
//! | call | requests |
//! |---|---|
//! | `list_page` | `GET {coll}`, page *n* (1-based) |
//! | `get` | `GET {coll}/{id}` (with `$expand` for compliance), then per type `GET {coll}/{id}/settings` (pages of 25); `GET {coll}/{id}/definitionValues` (pages), then `GET {coll}/{id}/definitionValues/{dv}/presentationValues` per value; `GET {platform coll}/{id}/apps` (pages) |
//! | `assignments` | `GET {write coll}/{id}/assignments` |
//! | `create` | `POST {write coll}` |
//! | `update` | `PATCH` or `PUT {write coll}/{id}` (the type's verb) |
//! | `delete` | `DELETE {write coll}/{id}` |
//! | `assign` | `POST {write coll}/{id}/assign` |
//! | `find_groups` | `GET groups` |
//!
//! `{write coll}` differs from `{coll}` only for app protection (the
//! per-platform collection of the object's `@odata.type`). A `vanish`
//! rule on `{coll}/{id}` leaves the object listed while every other call
//! on it answers [`ProviderError::NotFound`]; `expire_token` rules do not
//! apply to a folder and are ignored.
//!
//! What a write does beyond storing the body, as Graph does: a create
//! takes the type's only `@odata.type` when the body leaves it out (a type
//! with several needs it), and a compliance policy must come with its
//! `scheduledActionsForRule`; `assignments` never ride in a body (they are
//! written with `assign`); a PUT keeps what Graph manages itself
//! (`createdDateTime`, `isAssigned`, …) and the assignments, refuses a null
//! `roleScopeTagIds` and defaults a missing one to `["0"]`; `settingCount`
//! is recounted and settings renumbered `"0"`, `"1"`, …; other nested
//! navigation items get new ids; a `…@odata.bind` to a definition or
//! presentation the tenant already holds is expanded in place (the folder
//! holds no definition catalog, so an unknown one keeps its bind).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clean;
use crate::error::{ProviderError, Result};
use crate::fixture::{self, FaultKind, Faults, TenantData, TenantInfo};
use crate::object::{DESCRIPTORS, Descriptor, Navigation, ObjectType, UpdateVerb, permission_granted};
use crate::{Access, Page, ProviderKind, TenantProvider};

/// Graph's page size for the settings catalog list and a policy's
/// settings.
pub const SETTINGS_CATALOG_PAGE_SIZE: usize = 25;

/// The page size of every other list and navigation collection: the most
/// Graph's Intune collections answer in one page.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// How many earlier versions of a collection stay answerable by a cursor
/// issued before a write. Bounded because each one is a copy of the
/// collection held in memory.
pub const SNAPSHOTS_KEPT: usize = 4;

/// How the directory provider pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSizes {
    /// The settings catalog list (`configurationPolicies`): 25, as Graph.
    pub settings_catalog: usize,
    /// A settings catalog policy's `settings`: 25, as Graph.
    pub settings: usize,
    /// Every other list (and definition values, presentation values,
    /// apps): [`DEFAULT_PAGE_SIZE`].
    pub other: usize,
}

impl Default for PageSizes {
    fn default() -> Self {
        Self {
            settings_catalog: SETTINGS_CATALOG_PAGE_SIZE,
            settings: SETTINGS_CATALOG_PAGE_SIZE,
            other: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The request path of one object (`deviceManagement/deviceConfigurations/{id}`),
/// relative to the API version — what a `faults.json` rule names to reach
/// that object (and, since rules match below their path, its navigation
/// data and assignments).
pub fn item_path(ty: ObjectType, id: &str) -> String {
    format!("{}/{id}", ty.descriptor().collection)
}

/// A tenant folder served like Graph. Cheap to clone; clones share the
/// loaded data.
#[derive(Clone, Debug)]
pub struct DirectoryProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    overlay: PathBuf,
    info: TenantInfo,
    pages: PageSizes,
    faults: Faults,
    /// Ties a cursor to this connection: generations restart at every
    /// open, so a cursor from another connection must not be mistaken for
    /// one of ours.
    instance: u64,
    state: RwLock<BTreeMap<ObjectType, Collection>>,
    /// Shared by every provider of this folder in the process.
    folder_lock: Arc<Mutex<()>>,
}

/// One collection as loaded, with the versions recent cursors page.
#[derive(Debug)]
struct Collection {
    generation: u64,
    items: Arc<Vec<Value>>,
    /// The overlay file's stamp when `items` was read or written (`None`:
    /// no overlay file, `items` came from the tenant folder).
    stamp: Option<Stamp>,
    /// Earlier generations, newest first.
    history: VecDeque<(u64, Arc<Vec<Value>>)>,
}

impl Collection {
    fn new(items: Vec<Value>, stamp: Option<Stamp>) -> Self {
        Self {
            generation: 0,
            items: Arc::new(items),
            stamp,
            history: VecDeque::new(),
        }
    }

    fn install(&mut self, items: Vec<Value>, stamp: Option<Stamp>) {
        let old = std::mem::replace(&mut self.items, Arc::new(items));
        self.history.push_front((self.generation, old));
        self.history.truncate(SNAPSHOTS_KEPT);
        self.generation += 1;
        self.stamp = stamp;
    }

    fn at(&self, generation: u64) -> Option<Arc<Vec<Value>>> {
        if generation == self.generation {
            return Some(self.items.clone());
        }
        self.history
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, v)| v.clone())
    }
}

/// What identifies one version of an overlay file. The inode matters:
/// every write renames a new file into place, so two writes within the
/// modification time's resolution that leave the same length still differ.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: m.len(),
            modified: m.modified().ok(),
            inode,
        }
    }
}

fn stamp_of(file: &Path) -> Result<Option<Stamp>> {
    match std::fs::metadata(file) {
        Ok(m) => Ok(Some(Stamp::of(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(file, e)),
    }
}

fn io_error(file: &Path, e: std::io::Error) -> ProviderError {
    ProviderError::Unavailable(format!("{}: {e}", file.display()))
}

static FOLDER_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);

fn folder_lock(root: &Path) -> Arc<Mutex<()>> {
    let mut locks = FOLDER_LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    locks.entry(root.to_path_buf()).or_default().clone()
}

/// A list cursor, before base64.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    /// The type's stable name.
    t: String,
    /// The offset of the next page.
    o: usize,
    /// The collection's generation on the first page.
    g: u64,
    /// The connection's nonce.
    i: u64,
}

impl Cursor {
    fn encode(&self) -> Result<String> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| ProviderError::Unavailable(format!("could not encode a list cursor: {e}")))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn decode(s: &str) -> Result<Cursor> {
        URL_SAFE_NO_PAD
            .decode(s.trim())
            .ok()
            .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok())
            .ok_or_else(|| ProviderError::InvalidPayload("the list cursor is not one this provider issued".into()))
    }
}

impl DirectoryProvider {
    /// Opens the tenant folder at `root` with Graph's page sizes. A missing
    /// folder is [`ProviderError::NotFound`]; a malformed file is
    /// [`ProviderError::Malformed`] naming the file.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with(root, PageSizes::default())
    }

    /// Opens the tenant folder at `root` with explicit page sizes (each at
    /// least 1).
    pub fn open_with(root: &Path, pages: PageSizes) -> Result<Self> {
        if pages.settings_catalog == 0 || pages.settings == 0 || pages.other == 0 {
            return Err(ProviderError::Malformed(format!(
                "page sizes must be at least 1 (got {pages:?})"
            )));
        }
        let root = match std::fs::canonicalize(root) {
            Ok(r) if r.is_dir() => r,
            Ok(r) => {
                return Err(ProviderError::NotFound(format!(
                    "{} is not a folder (a directory tenant is a folder holding tenant.json)",
                    r.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProviderError::NotFound(format!(
                    "no tenant folder at {}",
                    root.display()
                )));
            }
            Err(e) => return Err(io_error(root, e)),
        };
        let overlay = fixture::overlay_dir(&root);
        // Stamps are taken before the files are read: if a file changes in
        // between, the stamp is older than the content and the next call
        // reads it again — never the other way round.
        let mut stamps = BTreeMap::new();
        for d in &DESCRIPTORS {
            stamps.insert(d.ty, stamp_of(&fixture::collection_file(&overlay, d.ty))?);
        }
        let data = TenantData::load(&root)?;
        let mut state = BTreeMap::new();
        for (ty, items) in data.collections {
            state.insert(ty, Collection::new(items, stamps.remove(&ty).flatten()));
        }
        // A folder has no tokens to expire; leaving those rules out keeps
        // them from shadowing a later rule that matches the same request.
        let faults = Faults::new(
            data.faults
                .into_iter()
                .filter(|r| r.fault != FaultKind::ExpireToken)
                .collect(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                folder_lock: folder_lock(&root),
                root,
                overlay,
                info: data.info,
                pages,
                faults,
                instance: rand::random(),
                state: RwLock::new(state),
            }),
        })
    }

    /// The tenant folder (canonical).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The overlay folder writes go to.
    pub fn overlay(&self) -> &Path {
        &self.inner.overlay
    }

    /// The folder's `tenant.json`.
    pub fn info(&self) -> &TenantInfo {
        &self.inner.info
    }

    /// Runs `change` on the freshest copy of a collection and persists the
    /// result, one writer per folder at a time, off the async executor
    /// (the file is written and fsynced). If `change` fails, nothing is
    /// written; once started, a write finishes even if the caller stops
    /// waiting, so it is never half done.
    async fn write<T, F>(&self, ty: ObjectType, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &mut Vec<Value>, &str) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.write_blocking(ty, change))
            .await
            .map_err(|e| ProviderError::Unavailable(format!("the write to the overlay folder did not finish: {e}")))?
    }
}

impl Inner {
    fn page_size(&self, ty: ObjectType) -> usize {
        if ty == ObjectType::SettingsCatalogPolicy {
            self.pages.settings_catalog
        } else {
            self.pages.other
        }
    }

    /// The current version of a collection, re-read first if its overlay
    /// file changed since it was loaded.
    fn snapshot(&self, ty: ObjectType) -> Result<(u64, Arc<Vec<Value>>)> {
        let file = fixture::collection_file(&self.overlay, ty);
        let now = stamp_of(&file)?;
        {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = state.get(&ty)
                && c.stamp == now
            {
                return Ok((c.generation, c.items.clone()));
            }
        }
        // Stamp and read again under the write guard, so a reader can never
        // install older content over what a writer just installed.
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let now = stamp_of(&file)?;
        let fresh = match state.get(&ty) {
            Some(c) => c.stamp == now,
            None => false,
        };
        if !fresh {
            let items = self.load_collection(ty)?;
            match state.get_mut(&ty) {
                Some(c) => c.install(items, now),
                None => {
                    state.insert(ty, Collection::new(items, now));
                }
            }
        }
        let c = state
            .get(&ty)
            .ok_or_else(|| ProviderError::Unavailable(format!("{ty} is not loaded")))?;
        Ok((c.generation, c.items.clone()))
    }

    /// A collection from disk: the overlay's file, else the folder's, else
    /// empty.
    fn load_collection(&self, ty: ObjectType) -> Result<Vec<Value>> {
        for file in [
            fixture::collection_file(&self.overlay, ty),
            fixture::collection_file(&self.root, ty),
        ] {
            match std::fs::read(&file) {
                Ok(bytes) => {
                    let doc = serde_json::from_slice(&bytes)
                        .map_err(|e| ProviderError::Malformed(format!("{}: not valid JSON ({e})", file.display())))?;
                    return fixture::check_collection(&file, ty, doc);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&file, e)),
            }
        }
        Ok(Vec::new())
    }

    fn write_blocking<T>(
        &self,
        ty: ObjectType,
        change: impl FnOnce(&Inner, &mut Vec<Value>, &str) -> Result<T>,
    ) -> Result<T> {
        let _in_process = self.folder_lock.lock().unwrap_or_else(PoisonError::into_inner);
        std::fs::create_dir_all(&self.overlay).map_err(|e| io_error(&self.overlay, e))?;
        let _other_processes = lock_overlay(&self.overlay)?;
        let (_, current) = self.snapshot(ty)?;
        let mut next: Vec<Value> = current.as_ref().clone();
        let now = now_rfc3339()?;
        let out = change(self, &mut next, &now)?;
        let file = fixture::collection_file(&self.overlay, ty);
        // What is written must load again: the same check a load makes.
        let next = fixture::check_collection(&file, ty, json!({ "value": next }))?;
        let stamp = persist(&file, &next)?;
        tracing::debug!(tenant.folder = %self.root.display(), object.type = %ty, "directory provider rewrote an overlay collection");
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match state.get_mut(&ty) {
            Some(c) => c.install(next, Some(stamp)),
            None => {
                state.insert(ty, Collection::new(next, Some(stamp)));
            }
        }
        Ok(out)
    }

    /// The version of a collection a cursor pages, and the offset.
    fn resume(&self, ty: ObjectType, cursor: &str) -> Result<(usize, u64, Arc<Vec<Value>>)> {
        let c = Cursor::decode(cursor)?;
        if c.i != self.instance {
            return Err(ProviderError::InvalidPayload(
                "the list cursor was issued by another connection; list again from the start".into(),
            ));
        }
        if c.t != ty.as_str() {
            return Err(ProviderError::InvalidPayload(format!(
                "the list cursor pages {}, not {ty}",
                c.t
            )));
        }
        let items = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            state.get(&ty).and_then(|col| col.at(c.g))
        };
        let items = items.ok_or_else(|| {
            ProviderError::InvalidPayload(format!(
                "the list cursor has expired: {ty} changed more than {SNAPSHOTS_KEPT} times since its first page; list again from the start"
            ))
        })?;
        if c.o == 0 || c.o >= items.len() {
            return Err(ProviderError::InvalidPayload(format!(
                "the list cursor points outside {ty}'s list"
            )));
        }
        Ok((c.o, c.g, items))
    }

    /// The scripted fault a request meets, as the error Graph's answer
    /// would be classified as. `needed` is what a `forbidden` rule names
    /// when it names no permission itself.
    fn fault(&self, method: &str, path: &str, page: Option<usize>, needed: &str) -> Result<()> {
        let page = page.map(|p| u32::try_from(p).unwrap_or(u32::MAX));
        let Some(rule) = self.faults.hit(method, path, page) else {
            return Ok(());
        };
        Err(match rule.fault {
            FaultKind::Throttle => ProviderError::Throttled {
                retry_after: rule.retry_after_duration(),
            },
            FaultKind::Unavailable => ProviderError::Unavailable(format!(
                "{method} {path} answered 503 Service Unavailable (scripted in faults.json)"
            )),
            FaultKind::Forbidden => ProviderError::PermissionMissing {
                permission: rule.permission.unwrap_or_else(|| needed.to_owned()),
            },
            FaultKind::BrokenPage => ProviderError::Unavailable(format!(
                "page {} of {path} cannot be read (scripted in faults.json)",
                rule.page.unwrap_or(1)
            )),
            // Never returned by `hit` (vanish) or filtered out at open
            // (expire_token).
            FaultKind::Vanish | FaultKind::ExpireToken => return Ok(()),
        })
    }

    fn need(&self, permission: &str) -> Result<()> {
        if permission_granted(&self.info.granted_permissions, permission) {
            Ok(())
        } else {
            Err(ProviderError::PermissionMissing {
                permission: permission.to_owned(),
            })
        }
    }

    fn vanished(&self, d: &Descriptor, id: &str, odata_type: Option<&str>) -> bool {
        self.faults.vanished(&format!("{}/{id}", d.collection))
            || self
                .faults
                .vanished(&format!("{}/{id}", d.write_collection(odata_type)))
    }

    /// The object `id` of a collection, honouring `vanish` rules.
    fn find<'a>(&self, d: &Descriptor, items: &'a [Value], id: &str) -> Result<&'a Value> {
        let found = items.iter().find(|v| id_of(v) == Some(id));
        if found.is_none() || self.vanished(d, id, found.and_then(odata_type_of)) {
            return Err(not_found(d, id));
        }
        found.ok_or_else(|| not_found(d, id))
    }

    /// Reads a navigation collection page by page, as a client must read
    /// Graph's `@odata.nextLink` chain: each page is one request that can
    /// meet a fault.
    fn read_pages(&self, path: &str, items: &[Value], size: usize, needed: &str) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(items.len());
        let mut page = 1;
        loop {
            self.fault("GET", path, Some(page), needed)?;
            let start = (page - 1) * size;
            let end = items.len().min(start + size);
            out.extend(items.get(start..end).unwrap_or(&[]).iter().cloned());
            if end >= items.len() {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// The full object: its list entry plus its navigation data, read the
    /// way Graph has to be read for the type.
    fn expand(&self, d: &Descriptor, entity: &Value, id: &str) -> Result<Value> {
        let mut out = fixture::list_entry(entity);
        let read = d.read_permission;
        let size = self.pages.other;
        match d.navigation {
            Navigation::None => {}
            Navigation::ItemRead => {
                // The item GET itself carries `scriptContent`.
                if let Some(content) = entity.get("scriptContent") {
                    out["scriptContent"] = content.clone();
                }
            }
            Navigation::ScheduledActions => {
                // `$expand` on the item GET: no further request.
                let actions = nav_array(d, id, entity, "scheduledActionsForRule")?;
                out["scheduledActionsForRule"] = Value::Array(actions.to_vec());
            }
            Navigation::Settings => {
                let settings = nav_array(d, id, entity, "settings")?;
                let path = format!("{}/{id}/settings", d.collection);
                let read = self.read_pages(&path, settings, self.pages.settings, read)?;
                let name = entity.get(d.name_property).and_then(Value::as_str).unwrap_or(id);
                match entity.get("settingCount").and_then(Value::as_u64) {
                    Some(n) if n == read.len() as u64 => {}
                    Some(n) => {
                        return Err(ProviderError::Malformed(format!(
                            "settings catalog policy \"{name}\" ({id}): read {} settings but its settingCount is {n}",
                            read.len()
                        )));
                    }
                    None => {
                        return Err(ProviderError::Malformed(format!(
                            "settings catalog policy \"{name}\" ({id}) has no settingCount to check the {} settings read against",
                            read.len()
                        )));
                    }
                }
                out["settings"] = Value::Array(read);
            }
            Navigation::DefinitionValues => {
                let values = nav_array(d, id, entity, "definitionValues")?;
                let path = format!("{}/{id}/definitionValues", d.collection);
                let mut values = self.read_pages(&path, values, size, read)?;
                for (i, dv) in values.iter_mut().enumerate() {
                    let Some(dv_id) = id_of(dv).map(str::to_owned) else {
                        return Err(ProviderError::Malformed(format!(
                            "{} {id}: definitionValues[{i}] has no string \"id\"",
                            d.name
                        )));
                    };
                    let presentations = nav_array(d, id, dv, "presentationValues")?;
                    let pv_path = format!("{path}/{dv_id}/presentationValues");
                    let presentations = self.read_pages(&pv_path, presentations, size, read)?;
                    dv["presentationValues"] = Value::Array(presentations);
                }
                out["definitionValues"] = Value::Array(values);
            }
            Navigation::Apps => {
                let apps = nav_array(d, id, entity, "apps")?;
                let coll = d.write_collection(odata_type_of(entity));
                let apps = self.read_pages(&format!("{coll}/{id}/apps"), apps, size, read)?;
                out["apps"] = Value::Array(apps);
            }
        }
        Ok(out)
    }
}

/// Holds the advisory lock of an overlay folder until dropped, so writers
/// in other processes wait their turn too.
#[cfg(unix)]
fn lock_overlay(overlay: &Path) -> Result<std::fs::File> {
    let path = overlay.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io_error(&path, e.into())),
        }
    }
}

/// Elsewhere only the in-process lock serializes writers.
#[cfg(not(unix))]
fn lock_overlay(_overlay: &Path) -> Result<()> {
    Ok(())
}

#[derive(Serialize)]
struct CollectionDoc<'a> {
    value: &'a [Value],
}

/// Writes a collection file atomically: a temporary file beside it,
/// fsynced, renamed into place. Returns the stamp of what was written
/// (taken from the temporary file, so a later write by someone else can
/// never be mistaken for ours).
fn persist(file: &Path, items: &[Value]) -> Result<Stamp> {
    let dir = file
        .parent()
        .ok_or_else(|| ProviderError::Unavailable(format!("{}: no parent folder", file.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut bytes = serde_json::to_vec_pretty(&CollectionDoc { value: items })
        .map_err(|e| ProviderError::Unavailable(format!("{}: could not serialize ({e})", file.display())))?;
    bytes.push(b'\n');
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
    let written = (|| -> std::io::Result<Stamp> {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        let stamp = Stamp::of(&f.metadata()?);
        std::fs::rename(&tmp, file)?;
        Ok(stamp)
    })();
    match written {
        Ok(stamp) => {
            // Makes the rename itself durable. The data is already in
            // place, so a failure here must not turn a done write into a
            // reported failure (a retried create would duplicate it).
            #[cfg(unix)]
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(stamp)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_error(file, e))
        }
    }
}

fn now_rfc3339() -> Result<String> {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ProviderError::Unavailable(format!("could not format the current time: {e}")))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

fn odata_type_of(v: &Value) -> Option<&str> {
    v.get("@odata.type").and_then(Value::as_str)
}

fn not_found(d: &Descriptor, id: &str) -> ProviderError {
    ProviderError::NotFound(format!("no {} with id {id}", d.name))
}

/// A navigation array of a stored entity (absent: empty).
fn nav_array<'a>(d: &Descriptor, id: &str, entity: &'a Value, key: &str) -> Result<&'a [Value]> {
    match entity.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ProviderError::Malformed(format!(
            "{} {id}: \"{key}\" must be an array",
            d.name
        ))),
    }
}

/// The descriptor of a type TenantAtlas may write.
fn writable(ty: ObjectType) -> Result<&'static Descriptor> {
    let d = ty.descriptor();
    match (d.update, d.write_permission) {
        (UpdateVerb::ReadOnly, _) | (_, None) => Err(ProviderError::InvalidPayload(format!(
            "{} objects are read only: they cannot be created, updated, deleted or assigned",
            d.name
        ))),
        (_, Some(_)) => Ok(d),
    }
}

fn write_permission(d: &Descriptor) -> &'static str {
    d.write_permission.unwrap_or(d.read_permission)
}

/// The checks Graph makes on any write body before looking at it.
fn check_body(ty: ObjectType, body: &Value) -> Result<&Map<String, Value>> {
    let Value::Object(fields) = body else {
        return Err(ProviderError::InvalidPayload("the body must be a JSON object".into()));
    };
    let read_only = clean::read_only_paths(ty, body);
    if !read_only.is_empty() {
        return Err(ProviderError::InvalidPayload(format!(
            "the body holds read-only properties: {}",
            read_only.join(", ")
        )));
    }
    if fields.contains_key("assignments") {
        return Err(ProviderError::InvalidPayload(
            "assignments are written with assign, not in the object's body".into(),
        ));
    }
    if let Some(t) = fields.get("@odata.type") {
        let d = ty.descriptor();
        match t.as_str() {
            Some(t) if d.knows(t) => {}
            Some(t) => {
                return Err(ProviderError::InvalidPayload(format!(
                    "unknown @odata.type {t} for {}",
                    d.name
                )));
            }
            None => {
                return Err(ProviderError::InvalidPayload("@odata.type must be a string".into()));
            }
        }
    }
    Ok(fields)
}

/// What a stored entity must satisfy (the same as a loaded one), refused
/// as Graph refuses a bad body.
fn check_entity(d: &Descriptor, e: &Map<String, Value>) -> Result<()> {
    if e.get(d.name_property).and_then(Value::as_str).is_none() {
        return Err(ProviderError::InvalidPayload(format!(
            "{} needs a string \"{}\"",
            d.name, d.name_property
        )));
    }
    Ok(())
}

/// The last key of a `…@odata.bind` URL: `…/groupPolicyDefinitions('ID')`
/// or `…/groupPolicyDefinitions/ID` → `ID`.
fn bind_key(url: &str) -> Option<&str> {
    let last = url.trim_end_matches('/').rsplit('/').next()?;
    let key = match last.split_once("('") {
        Some((_, rest)) => rest.strip_suffix("')")?,
        None => last,
    };
    (!key.is_empty()).then_some(key)
}

/// Does what Graph does to a stored body: the ids of nested navigation
/// items, `settingCount`, and the definitions and presentations a
/// `…@odata.bind` names (when the tenant already knows them; the folder
/// holds no definition catalog, so an unknown one keeps its bind).
fn normalize(d: &Descriptor, e: &mut Map<String, Value>, siblings: &[Value]) -> Result<()> {
    fn each<'a>(e: &'a mut Map<String, Value>, key: &str, name: &str) -> Result<std::slice::IterMut<'a, Value>> {
        match e.get_mut(key) {
            None => Ok([].iter_mut()),
            Some(Value::Array(a)) => Ok(a.iter_mut()),
            Some(_) => Err(ProviderError::InvalidPayload(format!(
                "\"{key}\" of a {name} must be an array"
            ))),
        }
    }
    fn give_id(v: &mut Value) {
        if let Value::Object(m) = v
            && !m.contains_key("id")
        {
            m.insert("id".into(), Value::String(new_id()));
        }
    }
    match d.navigation {
        Navigation::Settings => {
            let mut count = 0u64;
            // Graph numbers a policy's settings "0", "1", … in order.
            for (i, s) in each(e, "settings", d.name)?.enumerate() {
                if let Value::Object(m) = s {
                    m.insert("id".into(), Value::String(i.to_string()));
                }
                count += 1;
            }
            e.insert("settingCount".into(), json!(count));
        }
        Navigation::ScheduledActions => {
            for action in each(e, "scheduledActionsForRule", d.name)? {
                give_id(action);
                if let Some(Value::Array(configs)) = action.get_mut("scheduledActionConfigurations") {
                    configs.iter_mut().for_each(give_id);
                }
            }
        }
        Navigation::DefinitionValues => {
            let mut definitions = HashMap::new();
            let mut presentations = HashMap::new();
            for dv in siblings
                .iter()
                .filter_map(|p| p.get("definitionValues").and_then(Value::as_array))
                .flatten()
            {
                if let Some(def) = dv.get("definition")
                    && let Some(id) = id_of(def)
                {
                    definitions.insert(id.to_owned(), def.clone());
                }
                for pv in dv
                    .get("presentationValues")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(p) = pv.get("presentation")
                        && let Some(id) = id_of(p)
                    {
                        presentations.insert(id.to_owned(), p.clone());
                    }
                }
            }
            for dv in each(e, "definitionValues", d.name)? {
                give_id(dv);
                let Value::Object(m) = dv else { continue };
                expand_bind(m, "definition", &definitions);
                if let Some(Value::Array(pvs)) = m.get_mut("presentationValues") {
                    for pv in pvs {
                        give_id(pv);
                        if let Value::Object(pm) = pv {
                            expand_bind(pm, "presentation", &presentations);
                        }
                    }
                }
            }
        }
        Navigation::Apps => {
            for app in each(e, "apps", d.name)? {
                give_id(app);
            }
        }
        Navigation::None | Navigation::ItemRead => {}
    }
    Ok(())
}

/// Replaces `key@odata.bind` by the object `key` it names, when known.
fn expand_bind(m: &mut Map<String, Value>, key: &str, known: &HashMap<String, Value>) {
    let bind = format!("{key}@odata.bind");
    let target = m
        .get(&bind)
        .and_then(Value::as_str)
        .and_then(bind_key)
        .and_then(|k| known.get(k))
        .cloned();
    if let Some(target) = target {
        m.remove(&bind);
        m.insert(key.to_owned(), target);
    }
}

/// The assignment targets this build knows (see [`crate::Target`]).
const TARGET_TYPES: &[&str] = &[
    "#microsoft.graph.groupAssignmentTarget",
    "#microsoft.graph.exclusionGroupAssignmentTarget",
    "#microsoft.graph.allDevicesAssignmentTarget",
    "#microsoft.graph.allLicensedUsersAssignmentTarget",
];

fn check_assignment(i: usize, a: &Value) -> Result<()> {
    let bad = |what: String| ProviderError::InvalidPayload(format!("assignment {i}: {what}"));
    let target = a
        .get("target")
        .filter(|t| t.is_object())
        .ok_or_else(|| bad("needs a \"target\" object".into()))?;
    let t = odata_type_of(target).ok_or_else(|| bad("its target has no \"@odata.type\"".into()))?;
    if !TARGET_TYPES.contains(&t) {
        return Err(bad(format!("unknown target type {t}")));
    }
    let names_a_group = matches!(
        t,
        "#microsoft.graph.groupAssignmentTarget" | "#microsoft.graph.exclusionGroupAssignmentTarget"
    );
    if names_a_group && target.get("groupId").and_then(Value::as_str).is_none() {
        return Err(bad(format!("a {t} needs a string \"groupId\"")));
    }
    Ok(())
}

#[async_trait]
impl TenantProvider for DirectoryProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Directory
    }

    async fn access(&self) -> Result<Access> {
        Ok(Access {
            tenant_id: self.inner.info.id.clone(),
            granted: self.inner.info.granted_permissions.clone(),
        })
    }

    async fn list_page(&self, ty: ObjectType, cursor: Option<&str>) -> Result<Page> {
        let inner = &self.inner;
        let d = ty.descriptor();
        let size = inner.page_size(ty);
        let (offset, generation, items) = match cursor {
            Some(c) => inner.resume(ty, c)?,
            None => {
                let (g, items) = inner.snapshot(ty)?;
                (0, g, items)
            }
        };
        inner.fault("GET", d.collection, Some(offset / size + 1), d.read_permission)?;
        inner.need(d.read_permission)?;
        let end = items.len().min(offset + size);
        let page = items
            .get(offset..end)
            .unwrap_or(&[])
            .iter()
            .map(fixture::list_entry)
            .collect();
        let next = if end < items.len() {
            Some(
                Cursor {
                    t: ty.as_str().to_owned(),
                    o: end,
                    g: generation,
                    i: inner.instance,
                }
                .encode()?,
            )
        } else {
            None
        };
        Ok(Page { items: page, next })
    }

    async fn get(&self, ty: ObjectType, id: &str) -> Result<Value> {
        let inner = &self.inner;
        let d = ty.descriptor();
        let (_, items) = inner.snapshot(ty)?;
        inner.fault("GET", &format!("{}/{id}", d.collection), None, d.read_permission)?;
        inner.need(d.read_permission)?;
        let entity = inner.find(d, &items, id)?;
        inner.expand(d, entity, id)
    }

    async fn create(&self, ty: ObjectType, body: &Value) -> Result<Value> {
        let d = writable(ty)?;
        let inner = &self.inner;
        let coll = d.write_collection(odata_type_of(body));
        inner.fault("POST", coll, None, write_permission(d))?;
        inner.need(write_permission(d))?;
        let fields = check_body(ty, body)?;
        let odata_type = match (odata_type_of(body), d.odata_types) {
            (Some(t), _) => t.to_owned(),
            // Graph takes a base type's own type when the body omits it.
            (None, [only]) => (*only).to_owned(),
            (None, _) => {
                return Err(ProviderError::InvalidPayload(format!(
                    "a {} needs an \"@odata.type\" (one of {})",
                    d.name,
                    d.odata_types.join(", ")
                )));
            }
        };
        if ty == ObjectType::CompliancePolicy && !fields.contains_key("scheduledActionsForRule") {
            return Err(ProviderError::InvalidPayload(
                "a compliance policy is created with its scheduledActionsForRule".into(),
            ));
        }
        let fields = fields.clone();
        self.write(ty, move |_, items, now| {
            let mut e = Map::new();
            e.insert("@odata.type".into(), Value::String(odata_type));
            e.insert("id".into(), Value::String(new_id()));
            for (k, v) in fields {
                e.insert(k, v);
            }
            e.insert("createdDateTime".into(), Value::String(now.to_owned()));
            e.insert("lastModifiedDateTime".into(), Value::String(now.to_owned()));
            if matches!(ty, ObjectType::DeviceConfiguration | ObjectType::CompliancePolicy) {
                e.insert("version".into(), json!(1));
            }
            normalize(d, &mut e, items)?;
            check_entity(d, &e)?;
            let created = Value::Object(e);
            items.push(created.clone());
            Ok(created)
        })
        .await
    }

    async fn update(&self, ty: ObjectType, id: &str, body: &Value) -> Result<()> {
        let d = writable(ty)?;
        let inner = &self.inner;
        let (_, items) = inner.snapshot(ty)?;
        let stored_type = items
            .iter()
            .find(|v| id_of(v) == Some(id))
            .and_then(odata_type_of)
            .map(str::to_owned);
        let put = d.update == UpdateVerb::Put;
        let method = if put { "PUT" } else { "PATCH" };
        let path = format!("{}/{id}", d.write_collection(stored_type.as_deref()));
        inner.fault(method, &path, None, write_permission(d))?;
        inner.need(write_permission(d))?;
        let fields = check_body(ty, body)?.clone();
        if put && fields.get("roleScopeTagIds").is_some_and(Value::is_null) {
            return Err(ProviderError::InvalidPayload(
                "roleScopeTagIds cannot be null (leave it out for the default scope tag)".into(),
            ));
        }
        let id = id.to_owned();
        self.write(ty, move |inner, items, now| {
            let Some(pos) = items.iter().position(|v| id_of(v) == Some(id.as_str())) else {
                return Err(not_found(d, &id));
            };
            let Value::Object(old) = &items[pos] else {
                return Err(not_found(d, &id));
            };
            let old_type = odata_type_of(&items[pos]).map(str::to_owned);
            if inner.vanished(d, &id, old_type.as_deref()) {
                return Err(not_found(d, &id));
            }
            if let (Some(new), Some(old)) = (fields.get("@odata.type").and_then(Value::as_str), &old_type)
                && new != old
            {
                return Err(ProviderError::InvalidPayload(format!(
                    "the @odata.type of {} {id} is {old}; it cannot become {new}",
                    d.name
                )));
            }
            let mut e = if put {
                // PUT replaces what a client may write; what Graph manages
                // itself (and the assignments, written with assign) stays.
                let mut e = Map::new();
                for (k, v) in old {
                    if k == "@odata.type"
                        || k == "assignments"
                        || clean::READ_ONLY.contains(&k.as_str())
                        || clean::read_only_for(ty).contains(&k.as_str())
                    {
                        e.insert(k.clone(), v.clone());
                    }
                }
                for (k, v) in fields {
                    e.insert(k, v);
                }
                if !e.contains_key("roleScopeTagIds") {
                    e.insert("roleScopeTagIds".into(), json!(["0"]));
                }
                e
            } else {
                let mut e = old.clone();
                for (k, v) in fields {
                    e.insert(k, v);
                }
                e
            };
            e.insert("lastModifiedDateTime".into(), Value::String(now.to_owned()));
            if let Some(v) = e.get("version").and_then(Value::as_u64) {
                e.insert("version".into(), json!(v + 1));
            }
            normalize(d, &mut e, items)?;
            check_entity(d, &e)?;
            items[pos] = Value::Object(e);
            Ok(())
        })
        .await
    }

    async fn delete(&self, ty: ObjectType, id: &str) -> Result<()> {
        let d = writable(ty)?;
        let inner = &self.inner;
        let (_, items) = inner.snapshot(ty)?;
        let stored_type = items.iter().find(|v| id_of(v) == Some(id)).and_then(odata_type_of);
        let path = format!("{}/{id}", d.write_collection(stored_type));
        inner.fault("DELETE", &path, None, write_permission(d))?;
        inner.need(write_permission(d))?;
        let id = id.to_owned();
        self.write(ty, move |inner, items, _| {
            let Some(pos) = items.iter().position(|v| id_of(v) == Some(id.as_str())) else {
                return Err(not_found(d, &id));
            };
            if inner.vanished(d, &id, odata_type_of(&items[pos])) {
                return Err(not_found(d, &id));
            }
            items.remove(pos);
            Ok(())
        })
        .await
    }

    async fn assignments(&self, ty: ObjectType, id: &str) -> Result<Vec<Value>> {
        let inner = &self.inner;
        let d = ty.descriptor();
        if d.assign_wrapper.is_none() {
            return Err(ProviderError::InvalidPayload(format!(
                "{} objects have no assignments",
                d.name
            )));
        }
        let (_, items) = inner.snapshot(ty)?;
        let stored_type = items.iter().find(|v| id_of(v) == Some(id)).and_then(odata_type_of);
        let path = format!("{}/{id}/assignments", d.write_collection(stored_type));
        inner.fault("GET", &path, None, d.read_permission)?;
        inner.need(d.read_permission)?;
        let entity = inner.find(d, &items, id)?;
        Ok(nav_array(d, id, entity, "assignments")?.to_vec())
    }

    async fn assign(&self, ty: ObjectType, id: &str, assignments: &[Value]) -> Result<()> {
        let d = writable(ty)?;
        let Some(wrapper) = d.assign_wrapper else {
            return Err(ProviderError::InvalidPayload(format!(
                "{} objects have no assignments",
                d.name
            )));
        };
        let inner = &self.inner;
        let (_, items) = inner.snapshot(ty)?;
        let stored_type = items.iter().find(|v| id_of(v) == Some(id)).and_then(odata_type_of);
        let path = format!("{}/{id}/assign", d.write_collection(stored_type));
        inner.fault("POST", &path, None, write_permission(d))?;
        inner.need(write_permission(d))?;
        let body = json!({ wrapper: assignments });
        let read_only = clean::read_only_paths(ty, &body);
        if !read_only.is_empty() {
            return Err(ProviderError::InvalidPayload(format!(
                "the body holds read-only properties: {}",
                read_only.join(", ")
            )));
        }
        for (i, a) in assignments.iter().enumerate() {
            check_assignment(i, a)?;
        }
        let assignments = assignments.to_vec();
        let id = id.to_owned();
        self.write(ty, move |inner, items, _| {
            let Some(pos) = items.iter().position(|v| id_of(v) == Some(id.as_str())) else {
                return Err(not_found(d, &id));
            };
            if inner.vanished(d, &id, odata_type_of(&items[pos])) {
                return Err(not_found(d, &id));
            }
            let stored: Vec<Value> = assignments
                .into_iter()
                .map(|a| {
                    let mut m = Map::new();
                    m.insert("id".into(), Value::String(new_id()));
                    if let Value::Object(fields) = a {
                        m.extend(fields);
                    }
                    Value::Object(m)
                })
                .collect();
            let assigned = !stored.is_empty();
            if let Value::Object(e) = &mut items[pos] {
                e.insert("assignments".into(), Value::Array(stored));
                if e.contains_key("isAssigned") {
                    e.insert("isAssigned".into(), Value::Bool(assigned));
                }
            }
            Ok(())
        })
        .await
    }

    async fn find_groups(&self, name: &str) -> Result<Vec<Value>> {
        let inner = &self.inner;
        let d = ObjectType::Group.descriptor();
        inner.fault("GET", d.collection, None, d.read_permission)?;
        inner.need(d.read_permission)?;
        let (_, items) = inner.snapshot(ObjectType::Group)?;
        Ok(items
            .iter()
            .filter(|g| g.get("displayName").and_then(Value::as_str) == Some(name))
            .map(fixture::list_entry)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::object::{PERM_APPS_WRITE, PERM_CONFIG_READ, PERM_CONFIG_WRITE, PERM_GROUPS_READ};

    const DC: ObjectType = ObjectType::DeviceConfiguration;
    const SC: ObjectType = ObjectType::SettingsCatalogPolicy;
    const WIN10: &str = "#microsoft.graph.windows10GeneralConfiguration";

    struct Tenant {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    impl Tenant {
        fn open(&self) -> DirectoryProvider {
            DirectoryProvider::open(&self.root).unwrap()
        }

        fn open_paged(&self, other: usize) -> DirectoryProvider {
            DirectoryProvider::open_with(
                &self.root,
                PageSizes {
                    other,
                    ..PageSizes::default()
                },
            )
            .unwrap()
        }
    }

    fn tenant(collections: Vec<(ObjectType, Vec<Value>)>, faults: Option<Value>) -> Tenant {
        tenant_with(
            collections,
            faults,
            &[PERM_CONFIG_WRITE, PERM_APPS_WRITE, PERM_GROUPS_READ],
        )
    }

    fn tenant_with(collections: Vec<(ObjectType, Vec<Value>)>, faults: Option<Value>, perms: &[&str]) -> Tenant {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("contoso");
        std::fs::create_dir_all(&root).unwrap();
        let info = json!({
            "id": "6f1e8e4a-3c2b-4d7e-9a51-2f0c8b7d1a01",
            "displayName": "Contoso",
            "domain": "contoso.onmicrosoft.com",
            "grantedPermissions": perms,
        });
        std::fs::write(root.join("tenant.json"), info.to_string()).unwrap();
        for (ty, items) in collections {
            let file = fixture::collection_file(&root, ty);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, serde_json::to_vec_pretty(&json!({ "value": items })).unwrap()).unwrap();
        }
        if let Some(f) = faults {
            std::fs::write(root.join("faults.json"), f.to_string()).unwrap();
        }
        Tenant { _dir: dir, root }
    }

    fn dc(id: &str, name: &str) -> Value {
        json!({
            "@odata.type": WIN10,
            "id": id,
            "displayName": name,
            "description": "from the fixture",
            "version": 1,
            "createdDateTime": "2026-01-05T10:00:00Z",
            "lastModifiedDateTime": "2026-01-05T10:00:00Z",
            "passwordRequired": true,
        })
    }

    fn setting(i: usize) -> Value {
        json!({
            "id": i.to_string(),
            "settingInstance": {
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance",
                "settingDefinitionId": format!("device_vendor_msft_policy_config_setting_{i}"),
                "choiceSettingValue": {"value": format!("device_vendor_msft_policy_config_setting_{i}_1"), "children": []}
            }
        })
    }

    fn policy(id: &str, name: &str, settings: usize, setting_count: Option<usize>) -> Value {
        let mut p = json!({
            "@odata.type": "#microsoft.graph.deviceManagementConfigurationPolicy",
            "id": id,
            "name": name,
            "description": "",
            "platforms": "windows10",
            "technologies": "mdm",
            "roleScopeTagIds": ["0"],
            "isAssigned": false,
            "createdDateTime": "2026-01-05T10:00:00Z",
            "lastModifiedDateTime": "2026-01-05T10:00:00Z",
            "settings": (0..settings).map(setting).collect::<Vec<_>>(),
            "assignments": [],
        });
        if let Some(n) = setting_count {
            p["settingCount"] = json!(n);
        }
        p
    }

    fn group(id: &str, name: &str) -> Value {
        json!({"@odata.type": "#microsoft.graph.group", "id": id, "displayName": name, "securityEnabled": true})
    }

    fn group_assignment(group: &str) -> Value {
        json!({"target": {
            "@odata.type": "#microsoft.graph.groupAssignmentTarget",
            "groupId": group,
            "deviceAndAppManagementAssignmentFilterId": crate::NO_FILTER,
            "deviceAndAppManagementAssignmentFilterType": "none"
        }})
    }

    /// Every file under `root`, with its bytes.
    fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, &mut out);
        out
    }

    fn ids(items: &[Value]) -> Vec<String> {
        items.iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
    }

    fn fault_rule(path: &str, fault: &str) -> Value {
        json!({"path": path, "fault": fault})
    }

    #[tokio::test]
    async fn the_settings_catalog_pages_at_25_and_a_full_read_has_every_setting() {
        let mut policies: Vec<Value> = (0..58)
            .map(|i| policy(&format!("p{i}"), &format!("P{i}"), 1, Some(1)))
            .collect();
        policies.push(policy("big", "Big", 60, Some(60)));
        policies.push(policy("fifty", "Fifty", 50, Some(50)));
        // Page 3 of a policy's settings exists only past 50 settings: the
        // fault proves "big" is read in pages of 25 and "fifty" in two.
        let faults = json!({"faults": [
            {"path": "deviceManagement/configurationPolicies/big/settings", "fault": "broken_page", "page": 3},
            {"path": "deviceManagement/configurationPolicies/fifty/settings", "fault": "broken_page", "page": 3},
        ]});
        let t = tenant(vec![(SC, policies)], Some(faults));
        let p = t.open();

        let first = p.list_page(SC, None).await.unwrap();
        assert_eq!(first.items.len(), 25);
        let second = p.list_page(SC, first.next.as_deref()).await.unwrap();
        assert_eq!(second.items.len(), 25);
        let third = p.list_page(SC, second.next.as_deref()).await.unwrap();
        assert_eq!(third.items.len(), 10);
        assert_eq!(third.next, None);
        assert!(
            first
                .items
                .iter()
                .all(|v| v.get("settings").is_none() && v.get("assignments").is_none())
        );
        let all = p.list_all(SC).await.unwrap();
        assert_eq!(all.len(), 60);

        let e = p.get(SC, "big").await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::Unavailable(m) if m.contains("page 3")),
            "{e}"
        );
        let fifty = p.get(SC, "fifty").await.unwrap();
        assert_eq!(fifty["settings"].as_array().unwrap().len(), 50);

        // Without the fault, the full read has all 60, in order, and no
        // assignments (they have their own call).
        std::fs::remove_file(t.root.join("faults.json")).unwrap();
        let p = t.open();
        let big = p.get(SC, "big").await.unwrap();
        let settings = big["settings"].as_array().unwrap();
        assert_eq!(settings.len(), 60);
        assert_eq!(ids(settings), (0..60).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(big["settingCount"], 60);
        assert!(big.get("assignments").is_none());
    }

    #[tokio::test]
    async fn a_settings_count_that_differs_from_setting_count_is_malformed() {
        let t = tenant(
            vec![(
                SC,
                vec![
                    policy("short", "Short by one", 26, Some(27)),
                    policy("nocount", "No count", 2, None),
                ],
            )],
            None,
        );
        let p = t.open();
        let e = p.get(SC, "short").await.unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, ProviderError::Malformed(_)), "{e:?}");
        assert!(
            m.contains("Short by one") && m.contains("read 26") && m.contains("settingCount is 27"),
            "{m}"
        );
        let e = p.get(SC, "nocount").await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::Malformed(m) if m.contains("no settingCount")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn throttling_carries_integer_and_decimal_retry_after_and_stops_after_its_times() {
        let faults = json!({"faults": [
            {"path": "deviceManagement/deviceConfigurations", "method": "GET", "fault": "throttle", "retry_after": "2", "times": 1},
            {"path": "deviceManagement/configurationPolicies/p1/settings", "fault": "throttle", "retry_after": "0.5", "times": 1},
            {"path": "groups", "method": "GET", "fault": "throttle", "times": 1},
        ]});
        let t = tenant(
            vec![
                (DC, vec![dc("d1", "One")]),
                (SC, vec![policy("p1", "P1", 3, Some(3))]),
                (ObjectType::Group, vec![group("g1", "All staff")]),
            ],
            Some(faults),
        );
        let p = t.open();
        let e = p.list_page(DC, None).await.unwrap_err();
        assert_eq!(
            e,
            ProviderError::Throttled {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert!(e.retryable());
        assert_eq!(p.list_page(DC, None).await.unwrap().items.len(), 1);
        // The list of policies is not below the settings' path; the get's
        // settings request is.
        assert_eq!(p.list_page(SC, None).await.unwrap().items.len(), 1);
        let e = p.get(SC, "p1").await.unwrap_err();
        assert_eq!(
            e,
            ProviderError::Throttled {
                retry_after: Some(Duration::from_millis(500))
            }
        );
        assert_eq!(p.get(SC, "p1").await.unwrap()["settings"].as_array().unwrap().len(), 3);
        let e = p.find_groups("All staff").await.unwrap_err();
        assert_eq!(e, ProviderError::Throttled { retry_after: None });
        assert_eq!(p.find_groups("All staff").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn unavailable_and_forbidden_faults_are_classified() {
        let faults = json!({"faults": [
            {"path": "deviceManagement/deviceConfigurations", "method": "GET", "fault": "unavailable", "times": 2},
            {"path": "deviceManagement/deviceConfigurations", "method": "POST", "fault": "forbidden"},
            {"path": "groups", "fault": "forbidden", "permission": "GroupMember.Read.All"},
        ]});
        let t = tenant(vec![(DC, vec![dc("d1", "One")])], Some(faults));
        let p = t.open();
        for _ in 0..2 {
            let e = p.get(DC, "d1").await.unwrap_err();
            assert!(
                matches!(&e, ProviderError::Unavailable(m) if m.contains("GET deviceManagement/deviceConfigurations/d1")),
                "{e:?}"
            );
        }
        assert_eq!(p.get(DC, "d1").await.unwrap()["displayName"], "One");
        let e = p
            .create(DC, &json!({"@odata.type": WIN10, "displayName": "New"}))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ProviderError::PermissionMissing {
                permission: PERM_CONFIG_WRITE.into()
            }
        );
        let e = p.find_groups("x").await.unwrap_err();
        assert_eq!(
            e,
            ProviderError::PermissionMissing {
                permission: "GroupMember.Read.All".into()
            }
        );
        assert!(
            !t.root.with_file_name("contoso.overlay").join("beta").exists(),
            "a refused write writes nothing"
        );
    }

    #[tokio::test]
    async fn a_vanished_object_is_listed_but_every_read_and_write_of_it_is_not_found() {
        let faults = json!({"faults": [fault_rule("deviceManagement/deviceConfigurations/d2", "vanish")]});
        let t = tenant(vec![(DC, vec![dc("d1", "One"), dc("d2", "Two")])], Some(faults));
        let p = t.open();
        assert_eq!(ids(&p.list_all(DC).await.unwrap()), ["d1", "d2"]);
        assert!(matches!(p.get(DC, "d2").await, Err(ProviderError::NotFound(_))));
        assert!(matches!(p.assignments(DC, "d2").await, Err(ProviderError::NotFound(_))));
        assert!(matches!(
            p.update(DC, "d2", &json!({"description": "x"})).await,
            Err(ProviderError::NotFound(_))
        ));
        assert!(matches!(p.assign(DC, "d2", &[]).await, Err(ProviderError::NotFound(_))));
        assert!(matches!(p.delete(DC, "d2").await, Err(ProviderError::NotFound(_))));
        assert!(p.get(DC, "d1").await.is_ok());
        assert!(matches!(p.get(DC, "nope").await, Err(ProviderError::NotFound(m)) if m.contains("nope")));
    }

    #[tokio::test]
    async fn a_broken_page_fails_every_time_and_fails_the_whole_list() {
        let faults = json!({"faults": [
            {"path": "deviceManagement/deviceConfigurations", "fault": "broken_page", "page": 2},
            // A folder has no token: this rule is ignored, and does not
            // keep the rule below from firing.
            {"path": "deviceManagement/assignmentFilters", "fault": "expire_token"},
            {"path": "deviceManagement/assignmentFilters", "fault": "unavailable", "times": 1},
        ]});
        let items = (0..5).map(|i| dc(&format!("d{i}"), &format!("D{i}"))).collect();
        let t = tenant(vec![(DC, items)], Some(faults));
        let p = t.open_paged(2);
        let first = p.list_page(DC, None).await.unwrap();
        assert_eq!(ids(&first.items), ["d0", "d1"]);
        for _ in 0..3 {
            let e = p.list_page(DC, first.next.as_deref()).await.unwrap_err();
            assert!(
                matches!(&e, ProviderError::Unavailable(m) if m.contains("page 2")),
                "{e:?}"
            );
        }
        assert!(matches!(p.list_all(DC).await, Err(ProviderError::Unavailable(_))));
        let e = p.list_page(ObjectType::AssignmentFilter, None).await.unwrap_err();
        assert!(matches!(e, ProviderError::Unavailable(_)), "{e:?}");
        assert!(
            p.list_page(ObjectType::AssignmentFilter, None)
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[tokio::test]
    async fn writes_go_to_the_overlay_and_a_reopen_sees_them() {
        let t = tenant(
            vec![
                (DC, vec![dc("d1", "One"), dc("d2", "Two")]),
                (ObjectType::Group, vec![group("g1", "All staff")]),
            ],
            None,
        );
        let before = files(&t.root);
        let p = t.open();
        let created = p
            .create(
                DC,
                &json!({"@odata.type": WIN10, "displayName": "Three", "passwordRequired": false}),
            )
            .await
            .unwrap();
        let new_id = created["id"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&new_id).is_ok(), "{new_id}");
        assert!(created["createdDateTime"].is_string() && created["lastModifiedDateTime"].is_string());
        assert_eq!(created["version"], 1);
        p.update(DC, "d1", &json!({"description": "changed"})).await.unwrap();
        p.delete(DC, "d2").await.unwrap();
        p.assign(DC, &new_id, &[group_assignment("g1")]).await.unwrap();

        assert_eq!(files(&t.root), before, "the tenant folder is never written");
        let overlay = p.overlay().to_path_buf();
        assert_eq!(
            overlay,
            std::fs::canonicalize(&t.root)
                .unwrap()
                .with_file_name("contoso.overlay")
        );
        let left: Vec<_> = files(&overlay)
            .into_keys()
            .filter(|f| f.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");

        let again = t.open();
        assert_eq!(
            ids(&again.list_all(DC).await.unwrap()),
            ["d1".to_owned(), new_id.clone()]
        );
        let d1 = again.get(DC, "d1").await.unwrap();
        assert_eq!(d1["description"], "changed");
        assert_eq!(d1["version"], 2);
        assert_eq!(
            again.assignments(DC, &new_id).await.unwrap()[0]["target"]["groupId"],
            "g1"
        );
        // Groups were never written: still read from the folder.
        assert_eq!(again.find_groups("All staff").await.unwrap().len(), 1);
        assert!(!fixture::collection_file(&overlay, ObjectType::Group).exists());
    }

    #[tokio::test]
    async fn put_replaces_the_policy_and_patch_merges_properties() {
        let mut sc = policy("p1", "Old name", 2, Some(2));
        sc["description"] = json!("old description");
        sc["assignments"] =
            json!([{"id": "a1", "target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}}]);
        let t = tenant(vec![(SC, vec![sc]), (DC, vec![dc("d1", "One")])], None);
        let p = t.open();

        let mut new_setting = setting(7);
        new_setting.as_object_mut().unwrap().remove("id");
        p.update(
            SC,
            "p1",
            &json!({"name": "New name", "platforms": "windows10", "technologies": "mdm", "settings": [new_setting]}),
        )
        .await
        .unwrap();
        let got = p.get(SC, "p1").await.unwrap();
        assert_eq!(got["name"], "New name");
        assert!(
            got.get("description").is_none(),
            "PUT drops what the body leaves out: {got}"
        );
        assert_eq!(got["settingCount"], 1);
        assert_eq!(got["settings"][0]["id"], "0");
        assert_eq!(
            got["settings"][0]["settingInstance"]["settingDefinitionId"],
            "device_vendor_msft_policy_config_setting_7"
        );
        assert_eq!(
            got["createdDateTime"], "2026-01-05T10:00:00Z",
            "Graph keeps what it manages"
        );
        assert_ne!(got["lastModifiedDateTime"], "2026-01-05T10:00:00Z");
        assert_eq!(got["roleScopeTagIds"], json!(["0"]));
        assert_eq!(
            p.assignments(SC, "p1").await.unwrap().len(),
            1,
            "PUT leaves assignments alone"
        );
        let e = p
            .update(SC, "p1", &json!({"name": "x", "roleScopeTagIds": null}))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("roleScopeTagIds")),
            "{e:?}"
        );

        p.update(DC, "d1", &json!({"description": "patched"})).await.unwrap();
        let got = p.get(DC, "d1").await.unwrap();
        assert_eq!(got["description"], "patched");
        assert_eq!(got["displayName"], "One", "PATCH keeps what the body leaves out");
        assert_eq!(got["passwordRequired"], true);
        let e = p.update(DC, "d1", &json!({"displayName": null})).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("displayName")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn assign_replaces_the_whole_list_and_an_empty_list_clears_it() {
        let t = tenant(vec![(SC, vec![policy("p1", "P1", 1, Some(1))])], None);
        let p = t.open();
        p.assign(SC, "p1", &[group_assignment("g1"), group_assignment("g2")])
            .await
            .unwrap();
        let a = p.assignments(SC, "p1").await.unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|x| x["id"].is_string()));
        assert_eq!(p.list_all(SC).await.unwrap()[0]["isAssigned"], true);
        p.assign(SC, "p1", &[group_assignment("g3")]).await.unwrap();
        let a = p.assignments(SC, "p1").await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0]["target"]["groupId"], "g3");
        p.assign(SC, "p1", &[]).await.unwrap();
        assert!(p.assignments(SC, "p1").await.unwrap().is_empty());
        assert_eq!(p.list_all(SC).await.unwrap()[0]["isAssigned"], false);

        let e = p
            .assign(
                SC,
                "p1",
                &[json!({"target": {"@odata.type": "#microsoft.graph.madeUpTarget"}})],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("madeUpTarget")),
            "{e:?}"
        );
        let e = p.assignments(ObjectType::AssignmentFilter, "f1").await.unwrap_err();
        assert!(matches!(e, ProviderError::InvalidPayload(_)), "{e:?}");
    }

    #[tokio::test]
    async fn read_only_properties_are_refused_by_name_and_nothing_is_written() {
        let t = tenant(
            vec![(DC, vec![dc("d1", "One")]), (SC, vec![policy("p1", "P1", 1, Some(1))])],
            None,
        );
        let p = t.open();
        let e = p
            .create(
                DC,
                &json!({"@odata.type": WIN10, "id": "x", "displayName": "n", "createdDateTime": "2026-01-01T00:00:00Z"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("createdDateTime, id")),
            "{e:?}"
        );
        let e = p
            .update(SC, "p1", &json!({"name": "n", "settings": [setting(0)]}))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("settings[0].id")),
            "{e:?}"
        );
        let e = p
            .update(DC, "d1", &json!({"assignments@odata.navigationLink": "x"}))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("assignments@odata.navigationLink")),
            "{e:?}"
        );
        let mut a = group_assignment("g1");
        a["id"] = json!("old");
        let e = p.assign(DC, "d1", &[a]).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("assignments[0].id")),
            "{e:?}"
        );
        let e = p
            .create(
                DC,
                &json!({"@odata.type": WIN10, "displayName": "n", "assignments": []}),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::InvalidPayload(_)), "{e:?}");
        assert!(!p.overlay().join("beta").exists(), "nothing was written");
    }

    #[tokio::test]
    async fn unknown_odata_types_and_read_only_types_are_refused() {
        let t = tenant(
            vec![(DC, vec![dc("d1", "One")]), (ObjectType::Group, vec![group("g1", "G")])],
            None,
        );
        let p = t.open();
        let e = p
            .create(
                DC,
                &json!({"@odata.type": "#microsoft.graph.madeUpConfiguration", "displayName": "n"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("#microsoft.graph.madeUpConfiguration")),
            "{e:?}"
        );
        let e = p.create(DC, &json!({"displayName": "n"})).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("@odata.type")),
            "{e:?}"
        );
        let e = p
            .update(
                DC,
                "d1",
                &json!({"@odata.type": "#microsoft.graph.iosGeneralDeviceConfiguration"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("cannot become")),
            "{e:?}"
        );
        // A base type's own @odata.type may be left out.
        let created = p
            .create(
                SC,
                &json!({"name": "N", "platforms": "windows10", "technologies": "mdm", "settings": []}),
            )
            .await
            .unwrap();
        assert_eq!(
            created["@odata.type"],
            "#microsoft.graph.deviceManagementConfigurationPolicy"
        );
        assert_eq!(created["settingCount"], 0);

        for e in [
            p.create(ObjectType::Group, &json!({"displayName": "New"}))
                .await
                .unwrap_err(),
            p.update(ObjectType::Group, "g1", &json!({"displayName": "New"}))
                .await
                .unwrap_err(),
            p.delete(ObjectType::Group, "g1").await.unwrap_err(),
        ] {
            assert!(
                matches!(&e, ProviderError::InvalidPayload(m) if m.contains("read only")),
                "{e:?}"
            );
        }
        assert_eq!(p.find_groups("G").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn malformed_files_and_missing_folders_are_named() {
        let t = tenant(vec![(DC, vec![dc("d1", "One")])], None);
        std::fs::write(fixture::collection_file(&t.root, DC), b"{\"value\": [").unwrap();
        let e = DirectoryProvider::open(&t.root).unwrap_err();
        assert!(
            matches!(&e, ProviderError::Malformed(m) if m.contains("deviceConfigurations.json") && m.contains("not valid JSON")),
            "{e:?}"
        );

        let t = tenant(
            vec![(DC, vec![dc("d1", "One")])],
            Some(json!({"faults": [{"path": "x", "fault": "explode"}]})),
        );
        let e = DirectoryProvider::open(&t.root).unwrap_err();
        assert!(
            matches!(&e, ProviderError::Malformed(m) if m.contains("faults.json")),
            "{e:?}"
        );

        // A broken overlay file (edited by hand) is named when it is read.
        let t = tenant(vec![(DC, vec![dc("d1", "One")])], None);
        let p = t.open();
        let over = fixture::collection_file(p.overlay(), DC);
        std::fs::create_dir_all(over.parent().unwrap()).unwrap();
        std::fs::write(&over, b"[]").unwrap();
        let e = p.list_page(DC, None).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::Malformed(m) if m.contains("contoso.overlay") && m.contains("deviceConfigurations.json")),
            "{e:?}"
        );

        let missing = t.root.with_file_name("nowhere");
        let e = DirectoryProvider::open(&missing).unwrap_err();
        assert!(
            matches!(&e, ProviderError::NotFound(m) if m.contains("nowhere")),
            "{e:?}"
        );
        let e = DirectoryProvider::open(&t.root.join("tenant.json")).unwrap_err();
        assert!(
            matches!(&e, ProviderError::NotFound(m) if m.contains("not a folder")),
            "{e:?}"
        );
        let e = DirectoryProvider::open_with(
            &t.root,
            PageSizes {
                other: 0,
                ..PageSizes::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, ProviderError::Malformed(_)), "{e:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_lose_no_update() {
        let t = tenant(vec![(DC, vec![dc("d1", "One")])], None);
        // Two connections to one folder, as two runs would have.
        let providers = [t.open(), t.open()];
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let p = providers[i % 2].clone();
            tasks.spawn(async move {
                p.create(
                    DC,
                    &json!({"@odata.type": WIN10, "displayName": format!("Concurrent {i}")}),
                )
                .await
                .map(|v| v["id"].as_str().map(str::to_owned))
            });
        }
        let mut created = std::collections::HashSet::new();
        while let Some(r) = tasks.join_next().await {
            created.insert(r.unwrap().unwrap().unwrap());
        }
        assert_eq!(created.len(), 20);
        for p in providers.iter().chain([&t.open()]) {
            let all = p.list_all(DC).await.unwrap();
            assert_eq!(all.len(), 21, "each connection sees every write");
            assert!(created.iter().all(|id| all.iter().any(|v| v["id"] == id.as_str())));
        }
    }

    #[tokio::test]
    async fn cursors_are_checked_and_page_the_list_as_it_was() {
        let items = (0..5).map(|i| dc(&format!("d{i}"), &format!("D{i}"))).collect();
        let t = tenant(vec![(DC, items), (ObjectType::Group, vec![group("g1", "G")])], None);
        let p = t.open_paged(2);
        let first = p.list_page(DC, None).await.unwrap();
        let cursor = first.next.clone().unwrap();

        for bad in ["not base64 !", "eyJ4IjoxfQ", ""] {
            let e = p.list_page(DC, Some(bad)).await.unwrap_err();
            assert!(
                matches!(&e, ProviderError::InvalidPayload(m) if m.contains("cursor")),
                "{bad}: {e:?}"
            );
        }
        let e = p.list_page(ObjectType::Group, Some(&cursor)).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("group")),
            "{e:?}"
        );
        let e = t.open_paged(2).list_page(DC, Some(&cursor)).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("another connection")),
            "{e:?}"
        );

        // Writes between pages shift nothing out of the list being read.
        p.delete(DC, "d0").await.unwrap();
        p.delete(DC, "d1").await.unwrap();
        p.create(DC, &json!({"@odata.type": WIN10, "displayName": "Late"}))
            .await
            .unwrap();
        let mut seen = ids(&first.items);
        let mut next = Some(cursor.clone());
        while let Some(c) = next {
            let page = p.list_page(DC, Some(&c)).await.unwrap();
            seen.extend(ids(&page.items));
            next = page.next;
        }
        assert_eq!(seen, ["d0", "d1", "d2", "d3", "d4"]);
        let now = ids(&p.list_all(DC).await.unwrap());
        assert_eq!(now.len(), 4);
        assert_eq!(now[..3], ["d2", "d3", "d4"]);

        // Past SNAPSHOTS_KEPT writes, the old cursor has expired.
        for i in 0..SNAPSHOTS_KEPT {
            p.update(DC, "d2", &json!({"description": format!("v{i}")}))
                .await
                .unwrap();
        }
        let e = p.list_page(DC, Some(&cursor)).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("expired")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn granted_permissions_are_enforced() {
        let t = tenant_with(vec![(DC, vec![dc("d1", "One")])], None, &[PERM_CONFIG_READ]);
        let p = t.open();
        let access = p.access().await.unwrap();
        assert_eq!(access.tenant_id, "6f1e8e4a-3c2b-4d7e-9a51-2f0c8b7d1a01");
        assert_eq!(access.granted, [PERM_CONFIG_READ]);
        assert_eq!(p.kind(), ProviderKind::Directory);
        assert_eq!(p.list_all(DC).await.unwrap().len(), 1);
        assert_eq!(
            p.update(DC, "d1", &json!({"description": "x"})).await.unwrap_err(),
            ProviderError::PermissionMissing {
                permission: PERM_CONFIG_WRITE.into()
            }
        );
        assert_eq!(
            p.find_groups("x").await.unwrap_err(),
            ProviderError::PermissionMissing {
                permission: PERM_GROUPS_READ.into()
            }
        );
        assert_eq!(
            p.list_page(ObjectType::MobileApp, None).await.unwrap_err(),
            ProviderError::PermissionMissing {
                permission: crate::object::PERM_APPS_READ.into()
            }
        );
    }

    #[tokio::test]
    async fn each_kind_of_navigation_is_read_through_its_own_requests() {
        let definition = json!({"id": "def1", "displayName": "Turn off Autoplay", "classType": "machine"});
        let template = json!({
            "@odata.type": "#microsoft.graph.groupPolicyConfiguration",
            "id": "at1", "displayName": "Edge baseline",
            "definitionValues": [
                {"id": "dv1", "enabled": true, "definition": definition,
                 "presentationValues": [{"id": "pv1", "@odata.type": "#microsoft.graph.groupPolicyPresentationValueText",
                                         "value": "x", "presentation": {"id": "pres1", "label": "Drives"}}]},
                {"id": "dv2", "enabled": false, "definition": {"id": "def2"}, "presentationValues": []}
            ],
            "assignments": []
        });
        let script = json!({"@odata.type": "#microsoft.graph.deviceManagementScript", "id": "s1",
                            "displayName": "Set time zone", "scriptContent": "V3JpdGUtSG9zdA==", "runAsAccount": "system"});
        let compliance = json!({"@odata.type": "#microsoft.graph.windows10CompliancePolicy", "id": "c1",
                                "displayName": "Win10 compliance", "version": 1,
                                "scheduledActionsForRule": [{"id": "r1", "ruleName": "PasswordRequired",
                                    "scheduledActionConfigurations": [{"id": "sa1", "actionType": "block", "gracePeriodHours": 0}]}]});
        let app_policy = json!({"@odata.type": "#microsoft.graph.iosManagedAppProtection", "id": "ap1",
                                "displayName": "iOS MAM", "apps": [{"id": "app1", "mobileAppIdentifier": {"bundleId": "com.microsoft.office.outlook"}}]});
        let faults = json!({"faults": [
            {"path": "deviceManagement/groupPolicyConfigurations/at1/definitionValues/dv2/presentationValues", "fault": "unavailable", "times": 1},
            {"path": "deviceAppManagement/iosManagedAppProtections/ap1/apps", "fault": "throttle", "retry_after": "1", "times": 1},
        ]});
        let t = tenant(
            vec![
                (ObjectType::AdministrativeTemplate, vec![template]),
                (ObjectType::PowershellScript, vec![script]),
                (ObjectType::CompliancePolicy, vec![compliance]),
                (ObjectType::AppProtectionPolicy, vec![app_policy]),
            ],
            Some(faults),
        );
        let p = t.open();

        let at = ObjectType::AdministrativeTemplate;
        assert!(p.list_all(at).await.unwrap()[0].get("definitionValues").is_none());
        let e = p.get(at, "at1").await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::Unavailable(m) if m.contains("dv2/presentationValues")),
            "{e:?}"
        );
        let got = p.get(at, "at1").await.unwrap();
        assert_eq!(
            got["definitionValues"][0]["presentationValues"][0]["presentation"]["label"],
            "Drives"
        );
        assert_eq!(got["definitionValues"].as_array().unwrap().len(), 2);
        assert!(got.get("assignments").is_none());

        let ps = ObjectType::PowershellScript;
        assert!(p.list_all(ps).await.unwrap()[0].get("scriptContent").is_none());
        assert_eq!(p.get(ps, "s1").await.unwrap()["scriptContent"], "V3JpdGUtSG9zdA==");

        let cp = ObjectType::CompliancePolicy;
        assert!(
            p.list_all(cp).await.unwrap()[0]
                .get("scheduledActionsForRule")
                .is_none()
        );
        let got = p.get(cp, "c1").await.unwrap();
        assert_eq!(
            got["scheduledActionsForRule"][0]["scheduledActionConfigurations"][0]["actionType"],
            "block"
        );

        let app = ObjectType::AppProtectionPolicy;
        assert!(p.list_all(app).await.unwrap()[0].get("apps").is_none());
        assert!(matches!(p.get(app, "ap1").await, Err(ProviderError::Throttled { .. })));
        assert_eq!(p.get(app, "ap1").await.unwrap()["apps"][0]["id"], "app1");

        // A created template's definition bind resolves against the
        // definitions the tenant knows; nested items get ids.
        let created = p
            .create(
                at,
                &json!({"displayName": "Copy", "definitionValues": [{
                    "enabled": true,
                    "definition@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def1')",
                    "presentationValues": [{"@odata.type": "#microsoft.graph.groupPolicyPresentationValueText", "value": "y",
                        "presentation@odata.bind": "https://graph.microsoft.com/beta/deviceManagement/groupPolicyDefinitions('def1')/presentations('pres1')"}]
                }]}),
            )
            .await
            .unwrap();
        let got = p.get(at, created["id"].as_str().unwrap()).await.unwrap();
        let dv = &got["definitionValues"][0];
        assert_eq!(dv["definition"]["displayName"], "Turn off Autoplay");
        assert!(dv.get("definition@odata.bind").is_none());
        assert!(dv["id"].is_string());
        assert_eq!(dv["presentationValues"][0]["presentation"]["label"], "Drives");

        // A compliance policy is created with its scheduled actions, as
        // Graph requires.
        let e = p
            .create(
                cp,
                &json!({"@odata.type": "#microsoft.graph.windows10CompliancePolicy", "displayName": "n"}),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ProviderError::InvalidPayload(m) if m.contains("scheduledActionsForRule")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn find_groups_matches_the_display_name_exactly() {
        let t = tenant(
            vec![(
                ObjectType::Group,
                vec![
                    group("g1", "All staff"),
                    group("g2", "all staff"),
                    group("g3", "All staff"),
                ],
            )],
            None,
        );
        let p = t.open();
        assert_eq!(ids(&p.find_groups("All staff").await.unwrap()), ["g1", "g3"]);
        assert!(p.find_groups("All").await.unwrap().is_empty());
        assert_eq!(item_path(DC, "d1"), "deviceManagement/deviceConfigurations/d1");
    }
}

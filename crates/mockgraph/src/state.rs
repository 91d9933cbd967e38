//! What the local Graph holds in memory: each tenant's objects (loaded from
//! its folder, then changed by writes — the folder is never written), its
//! fault rules, the administrative-template definition catalog, the
//! issued tokens and the request log.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;
use tenantatlas_providers::fixture::{FaultRule, Faults, TenantData};
use tenantatlas_providers::object::ObjectType;

use crate::log::Log;
use crate::route::Route;
use crate::token::Tokens;

/// One type's objects in their order, with an index by id.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    items: Vec<Value>,
    index: HashMap<String, usize>,
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

impl Collection {
    /// A collection of `items` (ids already checked unique by the loader).
    pub fn new(items: Vec<Value>) -> Collection {
        let mut c = Collection {
            items,
            index: HashMap::new(),
        };
        c.reindex();
        c
    }

    fn reindex(&mut self) {
        self.index = self
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| id_of(v).map(|id| (id.to_owned(), i)))
            .collect();
    }

    /// Every object, in order.
    pub fn items(&self) -> &[Value] {
        &self.items
    }

    /// The object with `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.index.get(id).and_then(|i| self.items.get(*i))
    }

    /// The object with `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Value> {
        match self.index.get(id) {
            Some(i) => self.items.get_mut(*i),
            None => None,
        }
    }

    /// Appends an object (its `id` must be new).
    pub fn push(&mut self, v: Value) {
        if let Some(id) = id_of(&v) {
            self.index.insert(id.to_owned(), self.items.len());
        }
        self.items.push(v);
    }

    /// Removes the object with `id`.
    pub fn remove(&mut self, id: &str) -> Option<Value> {
        let i = *self.index.get(id)?;
        let v = self.items.remove(i);
        self.reindex();
        Some(v)
    }
}

/// A tenant's objects, by type.
#[derive(Debug, Default)]
pub(crate) struct Store {
    colls: BTreeMap<ObjectType, Collection>,
}

impl Store {
    /// One type's collection.
    pub fn coll(&self, ty: ObjectType) -> Option<&Collection> {
        self.colls.get(&ty)
    }

    /// One type's collection, to change.
    pub fn coll_mut(&mut self, ty: ObjectType) -> &mut Collection {
        self.colls.entry(ty).or_default()
    }

    /// The object a route's item id names, if it is in the route's
    /// collection (a platform collection only sees its platform's items).
    pub fn find(&self, route: &Route, id: &str) -> Option<&Value> {
        let v = self.coll(route.ty)?.get(id)?;
        in_route(route, v).then_some(v)
    }

    /// The same, to change.
    pub fn find_mut(&mut self, route: &Route, id: &str) -> Option<&mut Value> {
        let v = self.coll_mut(route.ty).get_mut(id)?;
        if in_route(route, v) { Some(v) } else { None }
    }
}

/// Whether an object of the route's type belongs to the route's
/// collection.
pub(crate) fn in_route(route: &Route, v: &Value) -> bool {
    route
        .platform
        .is_none_or(|p| v.get("@odata.type").and_then(Value::as_str) == Some(p))
}

/// One tenant.
pub(crate) struct Tenant {
    /// The id it is served as.
    pub id: String,
    /// Its primary domain (a token request may name the tenant by it).
    pub domain: String,
    /// Other names a token request may use (the domain it was served as,
    /// when it was given one instead of a GUID).
    pub aliases: Vec<String>,
    /// Its display name.
    pub display_name: String,
    /// The application permissions a token for it carries.
    pub granted: Vec<String>,
    store: RwLock<Store>,
    /// The folder's `faults.json` first, then each runtime addition.
    faults: RwLock<Vec<Faults>>,
}

impl Tenant {
    /// A tenant served as `id` from loaded folder data. A GUID `id` is
    /// the tenant's id (`tid`), whatever `tenant.json` says (so one folder
    /// can be served as several tenants); a domain `id` is an alias, the
    /// tenant keeping its `tenant.json` id.
    pub fn new(id: String, data: TenantData) -> Tenant {
        let (id, aliases) = if uuid::Uuid::try_parse(&id).is_ok() {
            (id, Vec::new())
        } else {
            (data.info.id.clone(), vec![id])
        };
        let mut store = Store::default();
        for (ty, items) in data.collections {
            store.colls.insert(ty, Collection::new(items));
        }
        Tenant {
            id,
            domain: data.info.domain,
            aliases,
            display_name: data.info.display_name,
            granted: data.info.granted_permissions,
            store: RwLock::new(store),
            faults: RwLock::new(vec![Faults::new(data.faults)]),
        }
    }

    /// Reads the objects. Lock poisoning is ignored: every write leaves
    /// the store consistent before anything can panic.
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the objects.
    pub fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault a request meets, if any (first matching rule with fires
    /// left, the folder's rules before runtime additions).
    pub fn fault(&self, method: &str, path: &str, page: Option<u32>) -> Option<FaultRule> {
        let sets = self.faults.read().unwrap_or_else(|e| e.into_inner());
        sets.iter().find_map(|f| f.hit(method, path, page))
    }

    /// Whether the object at `item_path` (`coll/id`) is scripted to be gone.
    pub fn vanished(&self, item_path: &str) -> bool {
        let sets = self.faults.read().unwrap_or_else(|e| e.into_inner());
        sets.iter().any(|f| f.vanished(item_path))
    }

    /// Adds fault rules at runtime (after every existing rule).
    pub fn add_faults(&self, rules: Vec<FaultRule>) {
        self.faults
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Faults::new(rules));
    }

    /// Removes the runtime rules (the folder's stay).
    pub fn clear_runtime_faults(&self) {
        self.faults.write().unwrap_or_else(|e| e.into_inner()).truncate(1);
    }
}

/// The administrative-template definitions and presentations a
/// `definition@odata.bind` / `presentation@odata.bind` may name: every one
/// that appears in any served tenant (Graph's built-in ADMX catalog is the
/// same in every tenant).
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// Definitions by id.
    pub definitions: HashMap<String, Value>,
    /// Presentations by id.
    pub presentations: HashMap<String, Value>,
}

impl Catalog {
    /// Collects the catalog from the tenants' policies.
    pub fn collect(tenants: &[Arc<Tenant>]) -> Catalog {
        let mut c = Catalog::default();
        for t in tenants {
            let store = t.read();
            let Some(coll) = store.coll(ObjectType::AdministrativeTemplate) else {
                continue;
            };
            for policy in coll.items() {
                let dvs = policy.get("definitionValues").and_then(Value::as_array);
                for dv in dvs.into_iter().flatten() {
                    if let Some(def) = dv.get("definition")
                        && let Some(id) = id_of(def)
                    {
                        c.definitions.entry(id.to_owned()).or_insert_with(|| def.clone());
                    }
                    let pvs = dv.get("presentationValues").and_then(Value::as_array);
                    for pv in pvs.into_iter().flatten() {
                        if let Some(p) = pv.get("presentation")
                            && let Some(id) = id_of(p)
                        {
                            c.presentations.entry(id.to_owned()).or_insert_with(|| p.clone());
                        }
                    }
                }
            }
        }
        c
    }
}

/// The settings a running local Graph answers by.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub page_size: usize,
    pub throttle: f64,
    pub retry_after: String,
    pub token_lifetime: Duration,
    pub client_secret: Option<String>,
}

/// Everything the requests share.
pub(crate) struct Shared {
    pub settings: Settings,
    pub tenants: Vec<Arc<Tenant>>,
    pub catalog: Catalog,
    pub tokens: Tokens,
    pub log: Log,
    /// Names this run in its `$skiptoken`s.
    pub nonce: String,
    /// `http://ADDR`, for links when a request has no usable `Host`.
    pub base_url: String,
    /// Graph requests counted for `--throttle`.
    throttle_seq: AtomicU64,
}

impl Shared {
    /// Assembles the shared state.
    pub fn new(settings: Settings, tenants: Vec<Arc<Tenant>>, base_url: String) -> Shared {
        let catalog = Catalog::collect(&tenants);
        Shared {
            settings,
            tenants,
            catalog,
            tokens: Tokens::default(),
            log: Log::default(),
            nonce: format!("{:016x}", rand::random::<u64>()),
            base_url,
            throttle_seq: AtomicU64::new(0),
        }
    }

    /// The tenant with this id, primary domain or alias
    /// (case-insensitive); ids first, then names, in serving order.
    pub fn tenant(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.tenants
            .iter()
            .find(|t| t.id.eq_ignore_ascii_case(name))
            .or_else(|| {
                self.tenants.iter().find(|t| {
                    t.domain.eq_ignore_ascii_case(name) || t.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                })
            })
    }

    /// Whether the next Graph request is one `--throttle` answers 429.
    /// Deterministic: request n is throttled when ⌊n·f⌋ grows, so exactly
    /// that fraction of requests is, spread evenly (with 0.05, every 20th).
    pub fn next_throttled(&self) -> bool {
        let f = self.settings.throttle;
        if f <= 0.0 {
            return false;
        }
        let n = self.throttle_seq.fetch_add(1, Ordering::SeqCst) + 1;
        // The epsilon keeps 20 × 0.05 from landing just under 1.
        let step = |k: u64| ((k as f64) * f + 1e-9).floor();
        step(n) > step(n - 1)
    }
}

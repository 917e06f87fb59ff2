//! The answer cache: identical requests (model, instruction, schema, content) are answered
//! without calling the model again. [`LlmCache`] is the trait a persistent store (the
//! monitor's database) implements; [`MemoryCache`] is the in-process default.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use parking_lot::Mutex;
use ring::digest::{Context, SHA256};

use crate::results::JsonMap;

/// The cache key of one request: the SHA-256 of its model, instruction, schema and content,
/// as 64 lowercase hex digits. Stable across processes and versions of scraipe, so it can be
/// stored in a database.
///
/// ```
/// use scraipe::llm::CacheKey;
/// let a = CacheKey::new("gpt-4o-mini", "Extract the price", Some("{}"), "page text");
/// let b = CacheKey::new("gpt-4o-mini", "Extract the price", Some("{}"), "page text");
/// let c = CacheKey::new("gpt-4o-mini", "Extract the price", None, "page text");
/// assert_eq!(a, b);
/// assert_ne!(a, c);
/// assert_eq!(a.as_str().len(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of a request. `schema` is the schema's JSON text (`None`: no schema).
    pub fn new(model: &str, instruction: &str, schema: Option<&str>, content: &str) -> CacheKey {
        let mut h = Context::new(&SHA256);
        // Each field is length-prefixed so that moving text from one field to the next
        // cannot produce the same key.
        let schema_tag: &[u8] = if schema.is_some() { b"s" } else { b"-" };
        for part in [
            model.as_bytes(),
            instruction.as_bytes(),
            schema_tag,
            schema.unwrap_or("").as_bytes(),
            content.as_bytes(),
        ] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let digest = h.finish();
        let mut hex = String::with_capacity(64);
        for b in digest.as_ref() {
            hex.push_str(&format!("{b:02x}"));
        }
        CacheKey(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where validated answers are kept. Only answers that parsed and matched the schema are
/// stored. Implementations must be cheap to call from async code (a quick lock or an indexed
/// lookup); a failing store should behave as a miss rather than fail the analysis.
pub trait LlmCache: Send + Sync + 'static {
    /// The stored answer for `key`, if any.
    fn get(&self, key: &CacheKey) -> Option<JsonMap>;
    /// Stores the answer for `key`.
    fn put(&self, key: &CacheKey, output: &JsonMap);
}

/// An in-memory [`LlmCache`] holding at most `capacity` answers (the oldest stored goes first).
///
/// ```
/// use scraipe::llm::{CacheKey, LlmCache, MemoryCache};
/// let cache = MemoryCache::new(2);
/// let key = |s: &str| CacheKey::new("m", "i", None, s);
/// let out = serde_json::json!({"ok": true}).as_object().cloned().unwrap();
/// cache.put(&key("a"), &out);
/// cache.put(&key("b"), &out);
/// cache.put(&key("c"), &out);
/// assert!(cache.get(&key("a")).is_none()); // evicted
/// assert_eq!(cache.get(&key("c")), Some(out));
/// assert_eq!(cache.len(), 2);
/// ```
pub struct MemoryCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<CacheKey, JsonMap>,
    order: VecDeque<CacheKey>,
}

impl MemoryCache {
    /// A cache for up to `capacity` answers (at least one).
    pub fn new(capacity: usize) -> MemoryCache {
        MemoryCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryCache {
    /// 10,000 answers.
    fn default() -> Self {
        MemoryCache::new(10_000)
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl LlmCache for MemoryCache {
    fn get(&self, key: &CacheKey) -> Option<JsonMap> {
        self.inner.lock().map.get(key).cloned()
    }

    fn put(&self, key: &CacheKey, output: &JsonMap) {
        let mut inner = self.inner.lock();
        if inner.map.insert(key.clone(), output.clone()).is_none() {
            inner.order.push_back(key.clone());
        }
        while inner.map.len() > self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        assert_ne!(
            CacheKey::new("ab", "c", None, "d"),
            CacheKey::new("a", "bc", None, "d")
        );
        assert_ne!(
            CacheKey::new("m", "i", Some(""), "c"),
            CacheKey::new("m", "i", None, "c")
        );
        // A fixed vector (computed independently): the key must not change between versions,
        // it is stored in databases.
        assert_eq!(
            CacheKey::new("m", "i", None, "c").as_str(),
            "123c804d665554bcbfef280fa9d0674f31734877ad98b0754d6f9fa9cafb8ab7"
        );
    }

    #[test]
    fn overwriting_does_not_grow_the_eviction_queue() {
        let c = MemoryCache::new(2);
        let k = CacheKey::new("m", "i", None, "x");
        for _ in 0..10 {
            c.put(&k, &JsonMap::new());
        }
        assert_eq!(c.inner.lock().order.len(), 1);
    }
}

//! [`ListLinkCollector`]: a fixed list of links.

use crate::traits::{LinkCollector, LinkIter};

/// Collects a predefined list of links (Python Scraipe's `ListTargeter`).
///
/// ```
/// use scraipe::defaults::ListLinkCollector;
/// use scraipe::LinkCollector;
/// let collector = ListLinkCollector::new(["https://a.example", "https://b.example"]);
/// let links: Vec<String> = collector.collect_links().collect();
/// assert_eq!(links, ["https://a.example", "https://b.example"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListLinkCollector {
    links: Vec<String>,
}

impl ListLinkCollector {
    /// A collector of these links, in this order.
    pub fn new<I, S>(links: I) -> ListLinkCollector
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ListLinkCollector {
            links: links.into_iter().map(Into::into).collect(),
        }
    }

    /// The links.
    pub fn links(&self) -> &[String] {
        &self.links
    }
}

impl LinkCollector for ListLinkCollector {
    fn collect_links(&self) -> LinkIter<'_> {
        Box::new(self.links.iter().cloned())
    }
}

//! A price found in structured data (JSON-LD or microdata) before it becomes an [`Offer`]:
//! both readers collect candidates the same way and keep the lowest.

use std::cmp::Ordering;

use super::price::cmp_price;
use super::{Availability, Offer, OfferSource};

/// A price candidate from one offer.
pub(crate) struct Candidate {
    pub(crate) price: String,
    pub(crate) currency: Option<String>,
    pub(crate) availability: Availability,
}

impl Candidate {
    pub(crate) fn into_offer(self, name: Option<String>, source: OfferSource) -> Offer {
        Offer {
            price: Some(self.price),
            currency: self.currency,
            availability: self.availability,
            name,
            source,
        }
    }
}

/// The lowest-priced candidate; of equal prices, the first.
pub(crate) fn lowest(candidates: impl Iterator<Item = Candidate>) -> Option<Candidate> {
    candidates.fold(None, |best: Option<Candidate>, c| match best {
        Some(b) if cmp_price(&c.price, &b.price) != Ordering::Less => Some(b),
        _ => Some(c),
    })
}

//! Prices as integers of minor units, and how the shop writes them: the exact decimal the
//! extractor must produce (`1299.00`), the machine form in structured data (the same), and the
//! locale forms humans read (`1.299,00 €`, `$1,299.00`, `1 299,00 zł`, `¥1,200`).

/// The currencies the shop sells in, each with its customary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    /// Euro, German format: `1.299,00 €`.
    Eur,
    /// US dollar: `$1,299.00`.
    Usd,
    /// Polish złoty: `1 299,00 zł` (a plain space groups thousands).
    Pln,
    /// Japanese yen, no minor unit: `¥1,200`.
    Jpy,
}

impl Currency {
    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
            Currency::Pln => "PLN",
            Currency::Jpy => "JPY",
        }
    }

    /// The symbol pages show.
    pub fn symbol(self) -> &'static str {
        match self {
            Currency::Eur => "€",
            Currency::Usd => "$",
            Currency::Pln => "zł",
            Currency::Jpy => "¥",
        }
    }

    /// Digits after the decimal point (ISO 4217 minor unit).
    pub fn decimals(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            _ => 2,
        }
    }

    /// The smallest price change the shop makes, in minor units (yen prices end in 0).
    pub(crate) fn step(self) -> u64 {
        match self {
            Currency::Jpy => 10,
            _ => 1,
        }
    }

    /// (thousands separator, decimal separator) of the locale.
    fn separators(self) -> (&'static str, &'static str) {
        match self {
            Currency::Eur => (".", ","),
            Currency::Usd | Currency::Jpy => (",", "."),
            Currency::Pln => (" ", ","),
        }
    }
}

/// An amount in minor units (cents; yen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// The currency.
    pub currency: Currency,
    /// The amount in minor units.
    pub minor: u64,
}

impl Money {
    pub(crate) fn new(currency: Currency, minor: u64) -> Money {
        Money { currency, minor }
    }

    /// The exact decimal: digits, `.` as the separator, exactly the currency's minor-unit
    /// digits, no grouping, no sign: `1299.00`, `12.50`, `1200` (yen). This is both what the
    /// structured data carries and what an extractor must produce.
    pub fn decimal(self) -> String {
        match self.currency.decimals() {
            0 => self.minor.to_string(),
            _ => format!("{}.{:02}", self.minor / 100, self.minor % 100),
        }
    }

    /// The amount in the currency's locale without the symbol: `1.299,00`, `1,299.00`,
    /// `1 299,00`, `1,200`.
    pub fn local_number(self) -> String {
        let (group, point) = self.currency.separators();
        let (major, minor) = match self.currency.decimals() {
            0 => (self.minor, None),
            _ => (self.minor / 100, Some(self.minor % 100)),
        };
        let digits = major.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push_str(group);
            }
            out.push(c);
        }
        if let Some(cents) = minor {
            out.push_str(point);
            out.push_str(&format!("{cents:02}"));
        }
        out
    }

    /// The amount as a shop in that locale shows it: `1.299,00 €`, `$1,299.00`,
    /// `1 299,00 zł`, `¥1,200`.
    pub fn display(self) -> String {
        let number = self.local_number();
        match self.currency {
            Currency::Usd | Currency::Jpy => format!("{}{number}", self.currency.symbol()),
            Currency::Eur | Currency::Pln => format!("{number} {}", self.currency.symbol()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let eur = Money::new(Currency::Eur, 129_900);
        assert_eq!(eur.decimal(), "1299.00");
        assert_eq!(eur.display(), "1.299,00 €");
        let usd = Money::new(Currency::Usd, 129_900);
        assert_eq!(usd.display(), "$1,299.00");
        assert_eq!(
            Money::new(Currency::Usd, 1_234_567_805).display(),
            "$12,345,678.05"
        );
        let pln = Money::new(Currency::Pln, 1_250);
        assert_eq!(
            (pln.decimal(), pln.display()),
            ("12.50".into(), "12,50 zł".into())
        );
        assert_eq!(Money::new(Currency::Pln, 129_900).display(), "1 299,00 zł");
        let jpy = Money::new(Currency::Jpy, 1_200);
        assert_eq!(
            (jpy.decimal(), jpy.display()),
            ("1200".into(), "¥1,200".into())
        );
        assert_eq!(Money::new(Currency::Eur, 5).decimal(), "0.05");
        assert_eq!(Money::new(Currency::Jpy, 999).local_number(), "999");
    }
}

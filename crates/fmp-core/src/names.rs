//! Device names: the one rule a store (`fmp init`) and a hub (`fmp join`)
//! apply, how they are shown on a terminal, and the form in which a hub
//! compares them for uniqueness.

/// The longest device name, in characters.
pub const MAX_NAME: usize = 64;

/// A control character (newline, terminal escape) or an invisible
/// formatting one (zero width, bidirectional override): never printed raw.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// `s` with control and invisible formatting characters escaped (`\n`,
/// `\u{1b}`), for printing names an older store may hold on a terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A device name as stores and hubs accept it: 1 to [`MAX_NAME`]
/// characters, not blank, with no control characters (newlines, terminal
/// escapes) and no invisible formatting characters (bidirectional
/// overrides, zero widths). `Err` says why, in words.
pub fn valid_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if name.trim().is_empty() {
        return Err("the device name is empty".into());
    }
    if n > MAX_NAME {
        return Err(format!(
            "the device name is {n} characters long, more than {MAX_NAME}"
        ));
    }
    if let Some(c) = name.chars().find(|c| hidden(*c)) {
        return Err(format!(
            "the device name holds the character {:?}, which is not printable",
            c
        ));
    }
    Ok(())
}

/// The form in which names are compared for uniqueness: spaces at either
/// end dropped and inner runs made one space, lower case, full-width ASCII
/// made ASCII, hyphen-like dashes and minus signs made `-`, and hidden
/// characters dropped. `gogui-phone-1 `, `GOGUI-PHONE-1` and
/// `gogui‐phone‐1` (U+2010) all compare as `gogui-phone-1`.
pub fn name_key(name: &str) -> String {
    let folded: String = name
        .chars()
        .filter(|c| !hidden(*c))
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}' => '-',
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_share_one_key_and_others_do_not() {
        let key = name_key("gogui-phone-1");
        for n in [
            "gogui-phone-1 ",
            " GOGUI-PHONE-1",
            "gogui\u{2010}phone\u{2010}1",
            "gogui\u{2212}phone\u{2013}1",
            "ｇｏｇｕｉ-phone-1",
            "gogui-phone\u{200b}-1",
        ] {
            assert_eq!(name_key(n), key, "{n:?}");
        }
        assert_ne!(name_key("gogui-phone-2"), key);
        assert_ne!(name_key("gogui phone 1"), key);
    }

    #[test]
    fn the_names_a_hub_refuses_are_refused() {
        for n in ["", "   ", "a\nb", "a\u{1b}[31m", "a\u{200b}", "a\u{202e}b"] {
            assert!(valid_name(n).is_err(), "{n:?}");
        }
        assert!(valid_name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert!(valid_name(&"é".repeat(MAX_NAME)).is_ok());
        assert!(valid_name("gogui-phone-1").is_ok());
    }
}

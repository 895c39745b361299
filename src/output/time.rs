//! Dates: capture timestamps as ISO 8601 and HTTP dates converted to ISO 8601.

use crate::capture::Ts;

/// Days since 1970-01-01 to a civil date (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Writes `ts` as `YYYY-MM-DDThh:mm:ss.uuuuuuZ`.
pub fn iso8601(out: &mut Vec<u8>, ts: Ts) {
    use std::io::Write;
    let secs = ts.0.div_euclid(1_000_000_000);
    let micros = ts.0.rem_euclid(1_000_000_000) / 1_000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60);
}

/// Converts an HTTP date (IMF-fixdate, RFC 850, asctime, and the common Netscape cookie form
/// `Wed, 21-Oct-2015 07:28:00 GMT`) to ISO 8601; `None` when it is not one.
pub fn http_date_to_iso(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s.trim();
    let rest = match s.find(',') {
        Some(p) => &s[p + 1..],
        None => s.split_once(' ').map(|x| x.1)?,
    };
    let words: Vec<&str> = rest.split([' ', '-']).filter(|w| !w.is_empty()).collect();
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let month = |w: &str| MONTHS.iter().position(|m| w.len() >= 3 && w[..3].eq_ignore_ascii_case(m)).map(|i| i as u32 + 1);
    let (day, mon, year, time) = if s.contains(',') {
        // "06 Nov 1994 08:49:37 GMT" or "06-Nov-94 08:49:37 GMT"
        if words.len() < 4 {
            return None;
        }
        (words[0].parse::<u32>().ok()?, month(words[1])?, words[2].parse::<i64>().ok()?, words[3])
    } else {
        // asctime: "Nov  6 08:49:37 1994"
        if words.len() < 4 {
            return None;
        }
        (words[1].parse::<u32>().ok()?, month(words[0])?, words[3].parse::<i64>().ok()?, words[2])
    };
    let year = if year < 70 {
        year + 2000
    } else if year < 100 {
        year + 1900
    } else {
        year
    };
    let hms: Vec<u32> = time.split(':').map(|x| x.parse::<u32>()).collect::<Result<_, _>>().ok()?;
    if hms.len() != 3 || !(1..=31).contains(&day) || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 || !(1..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, mon, day);
    let ts = Ts((days * 86_400 + hms[0] as i64 * 3600 + hms[1] as i64 * 60 + hms[2] as i64) * 1_000_000_000);
    let mut out = Vec::new();
    iso8601(&mut out, ts);
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(ts: i64) -> String {
        let mut v = Vec::new();
        iso8601(&mut v, Ts(ts));
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso(1_362_692_526_939_527_000), "2013-03-07T21:42:06.939527Z");
        assert_eq!(iso(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(iso(-1_000), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn http_dates() {
        let want = Some("1994-11-06T08:49:37.000000Z".to_string());
        assert_eq!(http_date_to_iso(b"Sun, 06 Nov 1994 08:49:37 GMT"), want);
        assert_eq!(http_date_to_iso(b"Sunday, 06-Nov-94 08:49:37 GMT"), want);
        assert_eq!(http_date_to_iso(b"Sun Nov  6 08:49:37 1994"), want);
        assert_eq!(http_date_to_iso(b"Wed, 21-Oct-2015 07:28:00 GMT"), Some("2015-10-21T07:28:00.000000Z".into()));
        assert_eq!(http_date_to_iso(b"tomorrow"), None);
        assert_eq!(http_date_to_iso(b"Sun, 99 Nov 1994 08:49:37 GMT"), None);
    }
}

//! The tiles' unit tests: parsing, a scan's counts, and every tile's answer.

use super::render::markdown_cell;
use super::scan::has_plaintext_password;
use super::*;
use crate::domain::breach::RawRecord;
use crate::domain::catalog::CatalogId;
use crate::domain::collector::RecordSink;
use std::collections::HashMap;

#[test]
fn tiles_and_periods_display_as_they_parse() {
    for tile in TileId::ALL {
        assert_eq!(TileId::parse(&tile.to_string()), Some(tile));
    }
    for period in Period::ALL {
        assert_eq!(Period::parse(&period.to_string()), Some(period));
    }
    assert_eq!(Period::Last90Days.to_string(), "last_90_days");
}

const NOW: &str = "2026-03-10T12:00:00Z";

fn now() -> Timestamp {
    Timestamp::parse(NOW).unwrap()
}

fn record(fields: Value) -> RawRecord {
    serde_json::from_value(fields).unwrap()
}

/// A record published at `date` with `fields` on top.
fn at(date: &str, mut fields: Value) -> RawRecord {
    fields["spycloud_publish_date"] = json!(date);
    record(fields)
}

/// One page fed as a source feeds it: its `hits` (when said), then records while the
/// tally wants more; whether it still wants more after the page.
fn page(scan_tally: &mut ScanTally, hits: Option<u64>, records: Vec<RawRecord>) -> bool {
    if let Some(hits) = hits {
        scan_tally.hits(hits);
    }
    for record in records {
        if !scan_tally.wants_more() {
            break;
        }
        scan_tally.add(record);
    }
    scan_tally.wants_more()
}

fn scan(period: Period, records: Vec<RawRecord>) -> Figures {
    let mut scan_tally = ScanTally::new(period, now(), 1_000);
    page(&mut scan_tally, Some(records.len() as u64), records);
    scan_tally.finish()
}

fn data(tile: TileId, figures: &Figures) -> Value {
    let expires = figures.end.plus(TimeDelta::minutes(10));
    let title = |id: CatalogId| (id.0 == 1).then(|| "One".to_owned());
    serde_json::to_value(tile_data(tile, figures, expires, title)).unwrap()
}

#[test]
fn tiles_and_periods_are_parsed_exactly() {
    for tile in TileId::ALL {
        assert_eq!(TileId::parse(tile.id()), Some(tile));
    }
    assert_eq!(TileId::parse("SPYCLOUD_TOP_BREACHES"), None);
    assert_eq!(Period::parse("last_30_days"), Some(Period::Last30Days));
    assert_eq!(Period::parse("last_year"), None);
    let definition = serde_json::to_value(TileId::TopBreaches.definition()).unwrap();
    assert_eq!(definition["type"], "horizontal_bar_chart");
    assert_eq!(
        definition["periods"],
        json!([
            "last_24_hours",
            "last_7_days",
            "last_30_days",
            "last_90_days"
        ])
    );
    assert_eq!(definition["default_period"], "last_7_days");
    assert_eq!(definition["tags"], json!(["spycloud"]));
}

#[test]
fn tile_bodies_are_read_with_the_contracts_errors() {
    let read = |body: &str, with_period| {
        parse_tile_request(body.as_bytes(), with_period).map_err(|e| (e.code(), e.message()))
    };
    assert_eq!(
        read(r#"{"tile_id":"spycloud_top_breaches","x":1}"#, false),
        Ok(TileRequest {
            tile: TileId::TopBreaches,
            period: None
        })
    );
    assert_eq!(
        read(
            r#"{"tile_id":"spycloud_top_breaches","period":"last_90_days"}"#,
            true
        ),
        Ok(TileRequest {
            tile: TileId::TopBreaches,
            period: Some(Period::Last90Days)
        })
    );
    for (body, detail) in [
        ("", r#"{"_schema":["Invalid input type."]}"#),
        ("[1]", r#"{"_schema":["Invalid input type."]}"#),
        ("{}", r#"{"tile_id":["Missing data for required field."]}"#),
        (r#"{"tile_id":7}"#, r#"{"tile_id":["Not a valid string."]}"#),
    ] {
        assert_eq!(
            read(body, false),
            Err((
                "invalid argument",
                format!("Invalid JSON payload received. {detail}.")
            )),
            "{body}"
        );
    }
    let no_period = read(r#"{"tile_id":"nope"}"#, true).unwrap_err();
    assert_eq!(
        no_period.1,
        r#"Invalid JSON payload received. {"period":["Missing data for required field."]}."#
    );
    assert_eq!(
        read(r#"{"tile_id":"nope","period":"last_year"}"#, true),
        Err(("invalid argument", "Unknown tile_id: nope".to_owned()))
    );
    assert_eq!(
        read(
            r#"{"tile_id":"spycloud_top_breaches","period":"last_year"}"#,
            true
        ),
        Err(("invalid argument", "Unknown period: last_year".to_owned()))
    );
}

// RULES R23
#[test]
fn the_period_counts_from_its_start_to_now_both_included() {
    let start = "2026-03-09T12:00:00Z";
    let records = vec![
        at("2026-03-09T11:59:59Z", json!({})),
        at(start, json!({})),
        at(NOW, json!({})),
        at("2026-03-10T12:00:01Z", json!({})),
        at("not a date", json!({})),
        record(json!({"severity": 2})),
    ];
    let figures = scan(Period::Last24Hours, records);
    assert_eq!(figures.records, 2);
    assert_eq!(figures.start.to_string(), "2026-03-09T12:00:00.000000Z");
    let days: Vec<_> = figures.days.iter().map(|d| d.day.to_string()).collect();
    assert_eq!(days, ["2026-03-09", "2026-03-10"]);
    for (period, days) in [
        (Period::Last7Days, 8),
        (Period::Last30Days, 31),
        (Period::Last90Days, 91),
    ] {
        let scan_tally = ScanTally::new(period, now(), 1);
        assert_eq!(
            scan_tally.since(),
            now().minus(period.span()).day(),
            "{period:?}"
        );
        assert_eq!(scan_tally.finish().days.len(), days, "{period:?}");
    }
}

// RULES R23
#[test]
fn employees_are_distinct_case_folded_non_empty_emails() {
    let figures = scan(
        Period::Last7Days,
        vec![
            at(NOW, json!({"email": "Alice@Example.com"})),
            at(NOW, json!({"email": "alice@example.COM"})),
            at(NOW, json!({"email": "bob@example.com"})),
            at(NOW, json!({"email": ""})),
            at(NOW, json!({"email": null})),
            at(NOW, json!({})),
        ],
    );
    assert_eq!((figures.employees, figures.records), (2, 6));
    assert_eq!(figures.top_employees[0].email, "alice@example.com");
    assert_eq!(figures.top_employees[0].records, 2);
}

// RULES R33
#[test]
fn plaintext_passwords_and_infected_devices() {
    let figures = scan(
        Period::Last7Days,
        vec![
            // Counted: a plaintext field, or a plaintext type with a password.
            at(NOW, json!({"password_plaintext": "p"})),
            at(NOW, json!({"password_type": "PlainText", "password": "p"})),
            // Not counted.
            at(NOW, json!({"password_plaintext": ""})),
            at(NOW, json!({"password_type": "plaintext", "password": ""})),
            at(NOW, json!({"password_type": "plaintext"})),
            at(NOW, json!({"password_type": "md5", "password": "5f4d"})),
            at(NOW, json!({"password": "p"})),
            at(NOW, json!({"infected_machine_id": "m1"})),
            at(NOW, json!({"infected_machine_id": "m1"})),
            at(NOW, json!({"infected_machine_id": "m2"})),
            at(NOW, json!({"infected_machine_id": ""})),
        ],
    );
    assert_eq!((figures.plaintext, figures.devices), (2, 2));
}

#[test]
fn days_split_records_by_severity_band_zeros_included() {
    let figures = scan(
        Period::Last7Days,
        vec![
            at("2026-03-04T00:00:00Z", json!({"severity": 30})),
            at("2026-03-04T23:59:59Z", json!({"severity": 6})),
            at("2026-03-04T10:00:00Z", json!({"severity": 5})),
            at("2026-03-10T00:00:00Z", json!({"severity": 3})),
            at("2026-03-10T00:00:00Z", json!({"severity": 2})),
            at("2026-03-10T00:00:00Z", json!({"severity": 0})),
            at("2026-03-10T00:00:00Z", json!({"severity": "high"})),
            at("2026-03-10T00:00:00Z", json!({})),
        ],
    );
    let bars = data(TileId::ExposuresByDay, &figures);
    let rows = bars["data"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert_eq!(
        rows[0],
        json!({"key": "2026-03-03", "label": "03/03", "value": 0, "values": [
            {"key": "high", "value": 0}, {"key": "medium", "value": 0},
            {"key": "low", "value": 0}, {"key": "unknown", "value": 0}]})
    );
    assert_eq!(rows[1]["value"], 3);
    assert_eq!(
        rows[1]["values"],
        json!([{"key": "high", "value": 2}, {"key": "medium", "value": 1},
               {"key": "low", "value": 0}, {"key": "unknown", "value": 0}])
    );
    assert_eq!(
        rows[7],
        json!({"key": "2026-03-10", "label": "03/10", "value": 5, "values": [
            {"key": "high", "value": 0}, {"key": "medium", "value": 1},
            {"key": "low", "value": 2}, {"key": "unknown", "value": 2}]})
    );
    assert_eq!(bars["hide_legend"], false);
    assert_eq!(bars["key_type"], "string");
    assert_eq!(
        bars["keys"],
        json!([{"key": "high", "label": "High"}, {"key": "medium", "label": "Medium"},
               {"key": "low", "label": "Low"}, {"key": "unknown", "label": "Unknown"}])
    );
}

#[test]
fn top_breaches_most_first_ties_by_the_smaller_id_ten_at_most() {
    let mut records = Vec::new();
    // Catalog n has n records for n in 1..=12, then 3 and 30 get as many as 12 and 4.
    for id in 1..=12u64 {
        records.extend((0..id).map(|_| at(NOW, json!({"source_id": id}))));
    }
    records.extend((0..9).map(|_| at(NOW, json!({"source_id": 3}))));
    records.extend((0..4).map(|_| at(NOW, json!({"source_id": "30"}))));
    records.push(at(NOW, json!({"source_id": [1]})));
    let figures = scan(Period::Last7Days, records);
    let order: Vec<_> = figures
        .top_breaches
        .iter()
        .map(|&(id, n)| (id.0, n))
        .collect();
    assert_eq!(
        order,
        [
            (3, 12),
            (12, 12),
            (11, 11),
            (10, 10),
            (9, 9),
            (8, 8),
            (7, 7),
            (6, 6),
            (5, 5),
            (4, 4)
        ]
    );
    let bars = data(TileId::TopBreaches, &figures);
    assert_eq!(
        bars["data"][0],
        json!({"key": "3", "label": "Breach 3", "value": 12, "values": [{"key": "records", "value": 12}]})
    );
    assert_eq!(
        bars["keys"],
        json!([{"key": "records", "label": "Records"}])
    );
    let one = scan(Period::Last7Days, vec![at(NOW, json!({"source_id": 1}))]);
    assert_eq!(data(TileId::TopBreaches, &one)["data"][0]["label"], "One");
}

// RULES R31
#[test]
fn most_exposed_employees_as_markdown_ties_by_email_and_pipes_escaped() {
    let mut records = vec![
        at(
            "2026-03-05T00:00:00Z",
            json!({"email": "b@x.com", "password_plaintext": "p", "infected_machine_id": "m1"}),
        ),
        at(
            "2026-03-08T00:00:00Z",
            json!({"email": "B@x.com", "infected_machine_id": "m1"}),
        ),
        at("2026-03-06T00:00:00Z", json!({"email": "a|b@x.com"})),
        at(
            "2026-03-07T00:00:00Z",
            json!({"email": "a|b@x.com", "infected_machine_id": "m2"}),
        ),
        at("2026-03-09T00:00:00Z", json!({"email": "c@x.com"})),
    ];
    for n in 0..10 {
        records.push(at(NOW, json!({"email": format!("z{n:02}@x.com")})));
    }
    let figures = scan(Period::Last7Days, records);
    let lines = data(TileId::MostExposedEmployees, &figures)["data"].clone();
    let lines: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(
        &lines[..5],
        [
            "| Employee | Records | Plaintext passwords | Infected devices | Latest |",
            "| --- | ---: | ---: | ---: | --- |",
            "| a\\|b@x.com | 2 | 0 | 1 | 2026-03-07 |",
            "| b@x.com | 2 | 1 | 1 | 2026-03-08 |",
            "| c@x.com | 1 | 0 | 0 | 2026-03-09 |",
        ]
    );
    assert_eq!(lines[11], "| z06@x.com | 1 | 0 | 0 | 2026-03-10 |");
    assert_eq!(markdown_cell("a\nb|c"), "a b\\|c");
    assert_eq!(
        markdown_cell("[x](http://e)<img>`c`\\@x.com"),
        "\\[x\\](http://e)\\<img\\>\\`c\\`\\\\@x.com"
    );
    assert_eq!(
        markdown_cell("first_last+tag@x.com"),
        "first_last+tag@x.com"
    );
}

#[test]
fn an_empty_period_shows_zeros_and_says_so() {
    let figures = scan(
        Period::Last24Hours,
        vec![at("2020-01-01T00:00:00Z", json!({"email": "old@x.com"}))],
    );
    let summary = data(TileId::ExposureSummary, &figures);
    let values: Vec<_> = summary["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["label"].as_str().unwrap(), m["value"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        values,
        [
            ("Exposed employees", 0),
            ("Breach records", 0),
            ("Plaintext passwords", 0),
            ("Infected devices", 0)
        ]
    );
    assert_eq!(summary["data"][0]["value_unit"], "integer");
    assert!(summary.get("keys").is_none());
    assert_eq!(
        data(TileId::MostExposedEmployees, &figures)["data"],
        json!(["No exposures in this period."])
    );
    assert_eq!(data(TileId::TopBreaches, &figures)["data"], json!([]));
    let days = data(TileId::ExposuresByDay, &figures);
    assert!(
        days["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["value"] == 0)
    );
}

#[test]
fn a_scan_stops_at_its_limit_and_says_how_many_records_it_did_not_read() {
    let records = |n: usize| (0..n).map(|_| at(NOW, json!({}))).collect::<Vec<_>>();
    let mut scan_tally = ScanTally::new(Period::Last7Days, now(), 5);
    assert!(page(&mut scan_tally, Some(12), records(3)));
    // The second page's hits do not replace the first's; only 2 of its 3 records are read.
    assert!(!page(&mut scan_tally, Some(99), records(3)));
    // A record offered past the limit anyway is not counted.
    scan_tally.add(at(NOW, json!({})));
    let figures = scan_tally.finish();
    assert_eq!((figures.records, figures.not_read), (5, Some(7)));
    let summary = data(TileId::ExposureSummary, &figures);
    assert_eq!(
        summary["data"][4],
        json!({"icon": "warning", "label": "Records not read", "value": 7, "value_unit": "integer"})
    );
    // Every record read, or no hits said: no fifth figure.
    let mut whole = ScanTally::new(Period::Last7Days, now(), 5);
    assert!(page(&mut whole, Some(3), records(3)));
    assert_eq!(whole.finish().not_read, None);
    let mut silent = ScanTally::new(Period::Last7Days, now(), 2);
    assert!(!page(&mut silent, None, records(3)));
    assert_eq!(silent.finish().not_read, None);
}

// RULES R24
#[test]
fn tile_data_times_are_the_period_and_the_scans_life() {
    let figures = scan(Period::Last7Days, vec![]);
    let answer = data(TileId::ExposureSummary, &figures);
    assert_eq!(
        answer["observed_time"],
        json!({"start_time": "2026-03-03T12:00:00.000000Z", "end_time": "2026-03-10T12:00:00.000000Z"})
    );
    assert_eq!(
        answer["valid_time"],
        json!({"start_time": "2026-03-10T12:00:00.000000Z", "end_time": "2026-03-10T12:10:00.000000Z"})
    );
    assert_eq!(answer["cache_scope"], "org");
}

#[test]
fn figures_read_back_as_themselves_and_every_tile_shows_the_same() {
    let figures = scan(
        Period::Last30Days,
        vec![
            at(
                "2026-03-10T08:00:00Z",
                json!({"email": "a@x.com", "source_id": 2,
                "severity": 25, "infected_machine_id": "m", "password_plaintext": "p"}),
            ),
            at(
                "2026-02-20T00:00:00Z",
                json!({"email": "B|b@x.com", "source_id": 1}),
            ),
        ],
    );
    assert!(!figures.days.is_empty() && !figures.top_employees.is_empty());
    let json = serde_json::to_vec(&figures).unwrap();
    let read: Figures = serde_json::from_slice(&json).unwrap();
    assert_eq!(read, figures);
    for tile in TileId::ALL {
        assert_eq!(data(tile, &read), data(tile, &figures));
    }
    assert!(serde_json::from_slice::<Figures>(b"{\"start\": 1}").is_err());
}

#[test]
fn figures_fit_their_period_only_when_everything_adds_up() {
    let mut records = vec![
        at(
            "2026-03-10T08:00:00Z",
            json!({"email": "a@x.com", "source_id": 2, "severity": 25,
                   "infected_machine_id": "m", "password_plaintext": "p"}),
        ),
        at(
            "2026-03-05T00:00:00Z",
            json!({"email": "b@x.com", "source_id": 1}),
        ),
    ];
    records
        .extend((0..12).map(|n| at(NOW, json!({"email": format!("{n}@x.com"), "source_id": n}))));
    let figures = scan(Period::Last7Days, records);
    assert_eq!(figures.fit(Period::Last7Days), Ok(()));
    assert_eq!(
        scan(Period::Last90Days, vec![]).fit(Period::Last90Days),
        Ok(())
    );
    assert!(figures.fit(Period::Last30Days).is_err(), "another period");

    let forged = |change: &dyn Fn(&mut Figures)| {
        let mut forged = figures.clone();
        change(&mut forged);
        forged.fit(Period::Last7Days)
    };
    let row = figures.top_employees[0].clone();
    let day = figures.days[0].clone();
    type Forgery<'a> = (&'a str, &'a dyn Fn(&mut Figures));
    let cases: [Forgery<'_>; 14] = [
        ("a day too many", &|f| f.days.push(day.clone())),
        ("a day missing", &|f| {
            f.days.pop();
        }),
        ("a day out of order", &|f| f.days.swap(0, 1)),
        ("days that do not add up", &|f| f.days[0].counts[0] += 1),
        ("more records than days", &|f| f.records += 1),
        ("more employees than records", &|f| {
            f.employees = f.records + 1
        }),
        ("more devices than records", &|f| f.devices = f.records + 1),
        ("11 employees", &|f| f.top_employees.push(row.clone())),
        ("11 breaches", &|f| f.top_breaches.push((CatalogId(99), 0))),
        ("breaches unsorted", &|f| f.top_breaches.swap(0, 1)),
        ("employees unsorted", &|f| f.top_employees.swap(0, 1)),
        ("a latest day out of the period", &|f| {
            f.top_employees[0].latest = f.end.day().next();
        }),
        ("a row with more plaintext than records", &|f| {
            f.top_employees[0].plaintext = f.top_employees[0].records + 1;
        }),
        ("an email longer than kept", &|f| {
            f.top_employees[0].email = "e".repeat(MAX_EMAIL_CHARS + 1);
        }),
    ];
    for (what, change) in cases {
        assert!(forged(change).is_err(), "{what}");
    }
}

// RULES R30, R32
#[test]
fn the_most_exposed_employees_are_exact_whatever_order_records_come_in() {
    // 3 000 employees with 1 to 12 records each, in a scrambled order: the figures of the
    // ten shown are those of a plain count of every email.
    let mut records = Vec::new();
    let mut seed: u64 = 7;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for n in 0..3_000u64 {
        let count = 1 + (n * 7919 % 12);
        for k in 0..count {
            let device = (k % 3 == 0).then(|| format!("m{}", k % 2));
            let mut fields = json!({"email": format!("E{:04}@x.com", (n * 31) % 3_000)});
            if let Some(device) = device {
                fields["infected_machine_id"] = json!(device);
            }
            if k % 4 == 1 {
                fields["password_plaintext"] = json!("p");
            }
            let day = next() % 7;
            records.push((
                next(),
                at(&format!("2026-03-{:02}T11:00:00Z", 4 + day), fields),
            ));
        }
    }
    records.sort_by_key(|(order, _)| *order);
    let records: Vec<RawRecord> = records.into_iter().map(|(_, record)| record).collect();
    let mut plain: HashMap<String, (u64, u64, std::collections::HashSet<String>, String)> =
        HashMap::new();
    for record in &records {
        let email = record.text("email").unwrap().to_lowercase();
        let entry = plain.entry(email).or_default();
        entry.0 += 1;
        entry.1 += u64::from(has_plaintext_password(record));
        if let Some(device) = record.text("infected_machine_id") {
            entry.2.insert(device.to_owned());
        }
        let day = record.published().unwrap().day().to_string();
        entry.3 = entry.3.clone().max(day);
    }
    let mut expected: Vec<(String, u64, u64, u64, String)> = plain
        .into_iter()
        .map(|(email, (n, p, d, latest))| (email, n, p, d.len() as u64, latest))
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    expected.truncate(10);
    let mut scan_tally = ScanTally::new(Period::Last7Days, now(), 1_000_000);
    page(&mut scan_tally, Some(records.len() as u64), records);
    let figures = scan_tally.finish();
    let shown: Vec<(String, u64, u64, u64, String)> = figures
        .top_employees
        .iter()
        .map(|e| {
            (
                e.email.clone(),
                e.records,
                e.plaintext,
                e.devices,
                e.latest.to_string(),
            )
        })
        .collect();
    assert_eq!(shown, expected);
    assert_eq!(figures.employees, 3_000);
    assert_eq!(figures.devices, 2);
    assert_eq!(figures.fit(Period::Last7Days), Ok(()));
}

// RULES R30
#[test]
fn strings_of_any_length_are_counted_by_hash_and_shown_cut() {
    let long = |c: &str, n: usize| c.repeat(n);
    let figures = scan(
        Period::Last7Days,
        vec![
            at(
                NOW,
                json!({"email": format!("{}@x.com", long("a", 60_000)),
                           "infected_machine_id": long("m", 20_000)}),
            ),
            at(
                NOW,
                json!({"email": format!("{}@X.com", long("A", 60_000)),
                           "infected_machine_id": long("m", 20_000)}),
            ),
            at(
                NOW,
                json!({"email": format!("{}b@x.com", long("a", 60_000)),
                           "infected_machine_id": long("n", 20_000)}),
            ),
        ],
    );
    assert_eq!((figures.employees, figures.devices), (2, 2));
    let first = &figures.top_employees[0];
    assert_eq!((first.records, first.devices), (2, 1));
    assert_eq!(first.email, long("a", MAX_EMAIL_CHARS));
    // The second's email is cut to the same text: ties beyond the cut go by hash.
    assert_eq!(figures.top_employees[1].email, long("a", MAX_EMAIL_CHARS));
    assert_eq!(figures.fit(Period::Last7Days), Ok(()));
}

//! The billing rules on the cases of the issue: the cap, the new year, consent, no answer,
//! the tariff change on 2026-01-01.

use std::collections::HashMap;

use super::*;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn doctor(rpps: &str, name: &str) -> Doctor {
    Doctor {
        rpps: Some(rpps.into()),
        name: name.into(),
    }
}

fn facts(on: NaiveDate) -> ThreadFacts {
    ThreadFacts {
        consent: true,
        expert: Some(doctor("10007654321", "Dr Yvon RUCH")),
        requester: doctor("10001234567", "Dr Olivier HANRIOT"),
        report_sent: true,
        day: on,
    }
}

/// Runs a series of threads for one patient, counting billable acts like the store does.
fn series(days: &[NaiveDate]) -> Vec<Vec<Act>> {
    let mut counts: HashMap<(String, i32), u32> = HashMap::new();
    let mut out = vec![];
    for d in days {
        let acts = acts(&facts(*d), &Tariff::default(), 4, |rpps, year| {
            counts.get(&(rpps.to_owned(), year)).copied().unwrap_or(0)
        });
        for a in acts.iter().filter(|a| a.billable) {
            *counts
                .entry((a.doctor_rpps.clone().unwrap_or_default(), a.day.year()))
                .or_default() += 1;
        }
        out.push(acts);
    }
    out
}

#[test]
fn an_answered_thread_bills_te2_and_rqd() {
    let a = acts(&facts(day(2026, 3, 2)), &Tariff::default(), 4, |_, _| 0);
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].code.as_str(), a[0].amount_cents, a[0].billable),
        (TE2, 2300, true)
    );
    assert_eq!(a[0].doctor_rpps.as_deref(), Some("10007654321"));
    assert_eq!(
        (a[1].code.as_str(), a[1].amount_cents, a[1].billable),
        (RQD, 1000, true)
    );
    assert_eq!(a[1].doctor_rpps.as_deref(), Some("10001234567"));
    assert!(a.iter().all(|a| a.reason.is_none()));
}

#[test]
fn the_fifth_in_a_year_is_not_billable_and_a_new_year_resets() {
    let days = [
        day(2026, 1, 5),
        day(2026, 3, 5),
        day(2026, 6, 5),
        day(2026, 9, 5),
        day(2026, 12, 31),
        day(2027, 1, 1),
    ];
    let all = series(&days);
    for (i, acts) in all.iter().enumerate().take(4) {
        assert!(acts.iter().all(|a| a.billable), "thread {i}: {acts:?}");
    }
    let fifth = &all[4];
    assert!(fifth.iter().all(|a| !a.billable), "{fifth:?}");
    let reason = fifth[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("plafond annuel"), "{reason}");
    assert!(reason.contains("2026"), "{reason}");
    assert!(all[5].iter().all(|a| a.billable), "new year: {:?}", all[5]);
}

#[test]
fn no_consent_or_no_expert_answer_bills_nothing() {
    let mut f = facts(day(2026, 2, 1));
    f.consent = false;
    let a = acts(&f, &Tariff::default(), 4, |_, _| 0);
    assert!(a.iter().all(|a| !a.billable));
    assert!(
        a[0].reason
            .as_deref()
            .unwrap_or_default()
            .contains("consentement")
    );

    let mut f = facts(day(2026, 2, 1));
    f.expert = None;
    let a = acts(&f, &Tariff::default(), 4, |_, _| 0);
    assert_eq!(a.len(), 1, "no TE2 without an answer: {a:?}");
    assert_eq!(a[0].code, RQD);
    assert!(!a[0].billable);
    assert_eq!(a[0].reason.as_deref(), Some("aucune réponse d'expert"));

    let mut f = facts(day(2026, 2, 1));
    f.expert = Some(Doctor {
        rpps: None,
        name: "Maladies infectieuses".into(),
    });
    assert!(
        acts(&f, &Tariff::default(), 4, |_, _| 0)
            .iter()
            .all(|a| !a.billable)
    );

    let mut f = facts(day(2026, 2, 1));
    f.report_sent = false;
    assert!(
        acts(&f, &Tariff::default(), 4, |_, _| 0)
            .iter()
            .all(|a| !a.billable)
    );
}

#[test]
fn the_tariff_changes_on_2026_01_01() {
    let t = Tariff::default();
    assert_eq!(t.price(TE2, day(2025, 12, 31)), Some(2000));
    assert_eq!(t.price(TE2, day(2026, 1, 1)), Some(2300));
    assert_eq!(t.price(RQD, day(2025, 12, 31)), Some(1000));
    assert_eq!(t.price(RQD, day(2026, 1, 1)), Some(1000));
    let a = acts(&facts(day(2025, 12, 31)), &t, 4, |_, _| 0);
    assert_eq!(a[0].amount_cents, 2000);
    assert!((a[0].amount_eur() - 20.0).abs() < 1e-9);
}

#[test]
fn overrides_win_and_a_gap_is_not_billable() {
    let mut t = Tariff::default();
    t.0.push(Price {
        code: TE2.into(),
        cents: 2500,
        from: Some(day(2027, 1, 1)),
        until: None,
    });
    assert_eq!(t.price(TE2, day(2026, 6, 1)), Some(2300));
    assert_eq!(t.price(TE2, day(2027, 6, 1)), Some(2500));
    let only_rqd = Tariff(vec![Price {
        code: RQD.into(),
        cents: 1000,
        from: None,
        until: None,
    }]);
    let a = acts(&facts(day(2026, 6, 1)), &only_rqd, 4, |_, _| 0);
    assert!(!a[0].billable);
    assert!(a[1].billable);
}

#[test]
fn patients_are_counted_by_ins_else_by_traits() {
    let born = day(1991, 1, 23);
    assert_eq!(
        patient_key(Some("2 91 01 57 463 123 81"), "x", "y", born),
        "INS:291015746312381"
    );
    assert_eq!(
        patient_key(None, " Zébulon ", "Joséphine  Marie", born),
        patient_key(None, "ZÉBULON", "joséphine marie", born)
    );
    assert_ne!(
        patient_key(None, "Zébulon", "Joséphine", born),
        patient_key(None, "Zébulon", "Joséphine", day(1991, 1, 24))
    );
}

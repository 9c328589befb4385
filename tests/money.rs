//! Money over HTTP: invoice totals against amounts computed here, every rule
//! of invoices, payments, refunds and credit notes, balances that stay right
//! under concurrent payments, invoice numbers with no gap and no repeat
//! under concurrent finalizations, and the webhooks a payment emits.

use hub_tests::*;
use serde_json::Value;

struct Books {
    key: String,
    live: String,
    patient: String,
}

async fn books(s: &TestServer) -> Books {
    let org = s.org("Books", true).await;
    let key = org.test.secret.clone();
    let patient = new_patient(&s.http, &key, "Payer").await;
    Books {
        key,
        live: org.live.secret.clone(),
        patient,
    }
}

fn invoice(patient: &str, lines: Value, status: &str) -> Value {
    json!({"patientId": patient, "currency": "GBP", "lineItems": lines, "status": status})
}

/// Half away from zero, computed the slow way: in decimal strings.
fn tax(amount: i64, bps: i64) -> i64 {
    let exact = amount as f64 * bps as f64 / 10_000.0;
    // Exactly representable for these sizes; ties go up (amounts are ≥ 0).
    let floor = (amount * bps) / 10_000;
    let rem = (amount * bps) % 10_000;
    let r = if rem * 2 >= 10_000 { floor + 1 } else { floor };
    assert!((r as f64 - exact).abs() <= 0.5 + 1e-9);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_follow_the_lines_with_half_cents_rounded_away_from_zero() {
    totals_follow_the_lines_with_half_cents_rounded_away_from_zero_on(&TestServer::start().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_follow_the_lines_with_half_cents_rounded_away_from_zero_dynamodb() {
    totals_follow_the_lines_with_half_cents_rounded_away_from_zero_on(&dynamo::server().await)
        .await;
}

async fn totals_follow_the_lines_with_half_cents_rounded_away_from_zero_on(s: &TestServer) {
    let b = books(s).await;
    let mut rng = Rng(7);
    let rates = [0, 500, 1250, 2000, 1, 9999, 10_000, 333, 50];
    for round in 0..8 {
        let n = 1 + rng.below(60);
        let mut lines = Vec::new();
        let (mut subtotal, mut total_tax) = (0i64, 0i64);
        for i in 0..n {
            let quantity = 1 + rng.below(if round == 0 { 3 } else { 40 }) as i64;
            // Prices that end in 5 make half pennies at 10 %.
            let unit = [5, 15, 25, 199, 1999, 12_345, 0, 7][rng.below(8)] as i64
                + if i % 3 == 0 {
                    rng.below(100_000) as i64
                } else {
                    0
                };
            let bps = rates[rng.below(rates.len())];
            let amount = quantity * unit;
            subtotal += amount;
            total_tax += tax(amount, bps);
            lines.push(json!({"description": format!("Line {i}"), "quantity": quantity, "unitAmount": unit, "taxRateBps": bps}));
        }
        let r = s
            .http
            .post(
                "/v1/invoices",
                &b.key,
                &invoice(&b.patient, Value::Array(lines.clone()), "draft"),
            )
            .await;
        r.expect(201);
        assert_eq!(r.body["subtotal"], subtotal);
        assert_eq!(r.body["tax"], total_tax);
        assert_eq!(r.body["total"], subtotal + total_tax);
        assert_eq!(r.body["balance"], subtotal + total_tax);
        assert_eq!(r.body["status"], "draft");
        assert!(r.body.get("number").is_none(), "a draft has no number");
        for (i, line) in r.body["lineItems"].as_array().unwrap().iter().enumerate() {
            let q = lines[i]["quantity"].as_i64().unwrap();
            let u = lines[i]["unitAmount"].as_i64().unwrap();
            assert_eq!(line["amount"], q * u);
            assert_eq!(
                line["tax"],
                tax(q * u, lines[i]["taxRateBps"].as_i64().unwrap())
            );
        }
    }
    // The edge cases by hand: 0.5p rounds up, 0.4999p down.
    for (unit, bps, want) in [
        (5, 1000, 1),
        (15, 1000, 2),
        (25, 1000, 3),
        (4, 1000, 0),
        (1, 5000, 1),
        (3, 1666, 0),
    ] {
        let r = s
            .http
            .post(
                "/v1/invoices",
                &b.key,
                &invoice(&b.patient, json!([{"description": "x", "quantity": 1, "unitAmount": unit, "taxRateBps": bps}]), "draft"),
            )
            .await;
        assert_eq!(r.body["tax"], want, "{unit} at {bps} bps");
    }
    // Amounts are integers up to 2^53 − 1, currencies real.
    let field = |r: &Resp| {
        r.body["errors"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let max = 9_007_199_254_740_991i64;
    let r = s
        .http
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(
                &b.patient,
                json!([{"description": "x", "quantity": 2, "unitAmount": max}]),
                "draft",
            ),
        )
        .await;
    r.expect_error(400, "INVALID_PARAMETERS");
    assert_eq!(field(&r), "lineItems[0]");
    let r = s
        .http
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(
                &b.patient,
                json!([{"description": "x", "quantity": 1, "unitAmount": 1.5}]),
                "draft",
            ),
        )
        .await;
    assert_eq!(field(&r), "lineItems[0].unitAmount");
    let mut bad = invoice(
        &b.patient,
        json!([{"description": "x", "quantity": 1, "unitAmount": 1}]),
        "draft",
    );
    bad["currency"] = json!("GBX");
    assert_eq!(
        field(&s.http.post("/v1/invoices", &b.key, &bad).await),
        "currency"
    );
    let r = s
        .http
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(&b.patient, json!([]), "draft"),
        )
        .await;
    assert_eq!(field(&r), "lineItems");
    // Zero-decimal currencies are whole units.
    let mut yen = invoice(
        &b.patient,
        json!([{"description": "Consultation", "quantity": 1, "unitAmount": 5000, "taxRateBps": 1000}]),
        "open",
    );
    yen["currency"] = json!("JPY");
    let r = s.http.post("/v1/invoices", &b.key, &yen).await;
    r.expect(201);
    assert_eq!(r.body["total"], 5500);
}

async fn pay(s: &TestServer, key: &str, inv: &str, kind: &str, amount: i64) -> Resp {
    s.http
        .post(
            "/v1/transactions",
            key,
            &json!({"invoiceId": inv, "type": kind, "amount": amount, "currency": "GBP", "method": "card"}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_money_rule_gives_its_409() {
    every_money_rule_gives_its_409_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_money_rule_gives_its_409_dynamodb() {
    every_money_rule_gives_its_409_on(&dynamo::server().await).await;
}

async fn every_money_rule_gives_its_409_on(s: &TestServer) {
    let b = books(s).await;
    let h = &s.http;
    let line = json!([{"description": "Hearing aid", "quantity": 1, "unitAmount": 10_000}]);
    // Drafts take no payment; finalizing numbers it and follows the balance.
    let d = h
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(&b.patient, line.clone(), "draft"),
        )
        .await;
    let d_id = d.id();
    pay(s, &b.key, &d_id, "payment", 100)
        .await
        .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"lineItems": [{"description": "Two", "quantity": 2, "unitAmount": 10_000}]}),
    )
    .await
    .expect(200);
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"status": "void"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    let open = h
        .patch(
            &format!("/v1/invoices/{d_id}"),
            &b.key,
            &json!({"status": "open"}),
        )
        .await;
    open.expect(200);
    assert_eq!(open.body["status"], "open");
    assert!(open.body["number"].as_str().unwrap().starts_with("INV-"));
    assert!(open.body["issuedAt"].is_string());
    // Frozen once finalized; the computed statuses cannot be set.
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"lineItems": line.clone()}),
    )
    .await
    .expect_error(409, "CONFLICT");
    let mut eur = json!({"currency": "EUR"});
    h.patch(&format!("/v1/invoices/{d_id}"), &b.key, &eur)
        .await
        .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"status": "paid"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"status": "draft"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"notes": "fine"}),
    )
    .await
    .expect(200);
    // A payment beyond the balance, a refund beyond what was paid: 409 with figures.
    let r = pay(s, &b.key, &d_id, "payment", 20_001).await;
    r.expect_error(409, "CONFLICT");
    assert!(
        r.body["message"].as_str().unwrap().contains("200.00 GBP"),
        "{}",
        r.body
    );
    let r = pay(s, &b.key, &d_id, "refund", 1).await;
    r.expect_error(409, "CONFLICT");
    eur = json!({"invoiceId": d_id, "type": "payment", "amount": 5, "currency": "EUR", "method": "cash"});
    h.post("/v1/transactions", &b.key, &eur)
        .await
        .expect_error(400, "INVALID_PARAMETERS");
    let p1 = pay(s, &b.key, &d_id, "payment", 15_000).await;
    p1.expect(201);
    let inv = h.get(&format!("/v1/invoices/{d_id}"), &b.key).await;
    assert_eq!(
        (inv.body["status"].as_str(), inv.body["balance"].as_i64()),
        (Some("partiallyPaid"), Some(5_000))
    );
    // Not voidable while paid; refunds up to what was paid.
    h.patch(
        &format!("/v1/invoices/{d_id}"),
        &b.key,
        &json!({"status": "void"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    let refund = pay(s, &b.key, &d_id, "refund", 5_000).await;
    refund.expect(201);
    pay(s, &b.key, &d_id, "refund", 10_001)
        .await
        .expect_error(409, "CONFLICT");
    // Deleting the payment a refund depends on: 409; the refund first, then it.
    h.delete(&format!("/v1/transactions/{}", p1.id()), &b.key)
        .await
        .expect_error(409, "CONFLICT");
    // Only reference and occurredAt change on a transaction.
    h.patch(
        &format!("/v1/transactions/{}", p1.id()),
        &b.key,
        &json!({"amount": 1}),
    )
    .await
    .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/transactions/{}", p1.id()),
        &b.key,
        &json!({"reference": "T-1"}),
    )
    .await
    .expect(200);
    // An invoice with transactions cannot be deleted.
    h.delete(&format!("/v1/invoices/{d_id}"), &b.key)
        .await
        .expect_error(409, "CONFLICT");
    h.delete(&format!("/v1/transactions/{}", refund.id()), &b.key)
        .await
        .expect(200);
    let r = h
        .delete(&format!("/v1/transactions/{}", p1.id()), &b.key)
        .await;
    r.expect(200);
    let inv = h.get(&format!("/v1/invoices/{d_id}"), &b.key).await;
    assert_eq!(
        inv.body["balance"], 20_000,
        "deleting the payment restores the balance"
    );
    assert_eq!(inv.body["status"], "open");
    assert_eq!(inv.body["amountPaid"], 0);
    // Credit notes: at most the balance; deleting one gives it back.
    let cn = h
        .post(
            "/v1/credit-notes",
            &b.key,
            &json!({"invoiceId": d_id, "amount": 20_001, "currency": "GBP"}),
        )
        .await;
    cn.expect_error(409, "CONFLICT");
    let cn = h
        .post(
            "/v1/credit-notes",
            &b.key,
            &json!({"invoiceId": d_id, "amount": 2_000, "currency": "GBP", "reason": "goodwill"}),
        )
        .await;
    cn.expect(201);
    let inv = h.get(&format!("/v1/invoices/{d_id}"), &b.key).await;
    assert_eq!(
        (
            inv.body["balance"].as_i64(),
            inv.body["amountCredited"].as_i64()
        ),
        (Some(18_000), Some(2_000))
    );
    pay(s, &b.key, &d_id, "payment", 18_000).await.expect(201);
    let inv = h.get(&format!("/v1/invoices/{d_id}"), &b.key).await;
    assert_eq!(inv.body["status"], "paid");
    // Paid in full takes no payment.
    pay(s, &b.key, &d_id, "payment", 1)
        .await
        .expect_error(409, "CONFLICT");
    // Void: an open invoice with nothing paid; then no payments.
    let v = h
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(&b.patient, line.clone(), "open"),
        )
        .await;
    let v_id = v.id();
    h.patch(
        &format!("/v1/invoices/{v_id}"),
        &b.key,
        &json!({"status": "void"}),
    )
    .await
    .expect(200);
    pay(s, &b.key, &v_id, "payment", 1)
        .await
        .expect_error(409, "CONFLICT");
    h.patch(
        &format!("/v1/invoices/{v_id}"),
        &b.key,
        &json!({"status": "open"}),
    )
    .await
    .expect_error(409, "CONFLICT");
    // A draft is deletable; a total of 0 is paid at once.
    let d2 = h
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(&b.patient, line.clone(), "draft"),
        )
        .await;
    h.delete(&format!("/v1/invoices/{}", d2.id()), &b.key)
        .await
        .expect(200);
    let free = h
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(
                &b.patient,
                json!([{"description": "Free check", "quantity": 1, "unitAmount": 0}]),
                "open",
            ),
        )
        .await;
    free.expect(201);
    assert_eq!(free.body["status"], "paid");
    // The patient cannot go while invoices refer to them.
    h.delete(&format!("/v1/patients/{}", b.patient), &b.key)
        .await
        .expect_error(409, "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_payments_never_overpay() {
    concurrent_payments_never_overpay_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_payments_never_overpay_dynamodb() {
    concurrent_payments_never_overpay_on(&dynamo::server().await).await;
}

async fn concurrent_payments_never_overpay_on(s: &TestServer) {
    let b = books(s).await;
    let inv = s
        .http
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(
                &b.patient,
                json!([{"description": "Aids", "quantity": 1, "unitAmount": 10_000}]),
                "open",
            ),
        )
        .await;
    inv.expect(201);
    let id = inv.id();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (h, key, id) = (s.http.clone(), b.key.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            h.post(
                "/v1/transactions",
                &key,
                &json!({"invoiceId": id, "type": "payment", "amount": 1_000, "currency": "GBP", "method": "card"}),
            )
            .await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => accepted += 1,
            409 => assert_eq!(r.body["name"], "CONFLICT"),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!(accepted, 10, "exactly ten payments of 1,000 fit 10,000");
    let after = s.http.get(&format!("/v1/invoices/{id}"), &b.key).await;
    assert_eq!(after.body["balance"], 0);
    assert_eq!(after.body["amountPaid"], 10_000);
    assert_eq!(after.body["status"], "paid");
    let txns = s
        .http
        .get(
            &format!("/v1/transactions?invoiceId={id}&$limit=100"),
            &b.key,
        )
        .await;
    let sum: i64 = txns.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 10_000, "the accepted payments sum to the total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_numbers_have_no_gap_and_no_repeat() {
    invoice_numbers_have_no_gap_and_no_repeat_on(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_numbers_have_no_gap_and_no_repeat_dynamodb() {
    invoice_numbers_have_no_gap_and_no_repeat_on(&dynamo::server().await).await;
}

async fn invoice_numbers_have_no_gap_and_no_repeat_on(s: &TestServer) {
    let b = books(s).await;
    let line = json!([{"description": "x", "quantity": 1, "unitAmount": 100}]);
    let mut ids = Vec::new();
    for _ in 0..30 {
        let r = s
            .http
            .post(
                "/v1/invoices",
                &b.key,
                &invoice(&b.patient, line.clone(), "draft"),
            )
            .await;
        r.expect(201);
        ids.push(r.id());
    }
    let mut tasks = Vec::new();
    for id in &ids {
        let (h, key, id) = (s.http.clone(), b.key.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            h.patch(
                &format!("/v1/invoices/{id}"),
                &key,
                &json!({"status": "open"}),
            )
            .await
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        r.expect(200);
        numbers.push(r.body["number"].as_str().unwrap().to_string());
    }
    numbers.sort();
    let want: Vec<String> = (1..=30).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, want);
    // Finalizing again changes nothing; live mode numbers on its own.
    let again = s
        .http
        .patch(
            &format!("/v1/invoices/{}", ids[0]),
            &b.key,
            &json!({"status": "open"}),
        )
        .await;
    again.expect(200);
    let (c, st, r) = reference_data(&s.http, &b.live).await;
    let p = s
        .http
        .post(
            "/v1/patients",
            &b.live,
            &json!({"fullName": "Live", "primaryPhoneNumber": "07700 900123", "tracking": {},
                    "primaryClinicId": c, "statusId": st, "referralId": r}),
        )
        .await
        .id();
    let live = s
        .http
        .post("/v1/invoices", &b.live, &invoice(&p, line.clone(), "open"))
        .await;
    live.expect(201);
    assert_eq!(live.body["number"], "INV-000001");
    let by_number = s.http.get("/v1/invoices?number=INV-000007", &b.key).await;
    assert_eq!(by_number.ids().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_emits_its_events_verified() {
    let rx = Receiver::start();
    let s = TestServer::with_fast_webhooks().await;
    let b = books(&s).await;
    let ep = s
        .http
        .post(
            "/v1/webhook-endpoints",
            &b.key,
            &json!({"url": format!("{}/money", rx.base), "enabledEvents": ["invoice.*", "transaction.*"]}),
        )
        .await;
    rx.secrets("/money", &[ep.body["secret"].as_str().unwrap()])
        .await;
    let inv = s
        .http
        .post(
            "/v1/invoices",
            &b.key,
            &invoice(
                &b.patient,
                json!([{"description": "Fitting", "quantity": 1, "unitAmount": 4_500}]),
                "open",
            ),
        )
        .await;
    let id = inv.id();
    let t = pay(&s, &b.key, &id, "payment", 4_500).await;
    t.expect(201);
    let log = rx
        .wait("the payment's events", |l| {
            ["transaction.created", "invoice.paid"]
                .iter()
                .all(|w| l.iter().any(|e| e["type"] == *w))
                && l.iter().any(|e| e["type"] == "invoice.updated")
        })
        .await;
    for e in &log {
        assert_eq!(e["stripe"], json!([true]), "{e}");
        assert_eq!(e["standard"], json!([true]), "{e}");
    }
    let upd = log.iter().find(|e| e["type"] == "invoice.updated").unwrap();
    let data = &upd["body"]["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["balance"], 0);
    assert_eq!(data["previousAttributes"]["balance"], 4_500);
    assert_eq!(data["previousAttributes"]["status"], "open");
    let paid = log.iter().find(|e| e["type"] == "invoice.paid").unwrap();
    assert_eq!(paid["body"]["data"]["status"], "paid");
    let created = log
        .iter()
        .find(|e| e["type"] == "transaction.created")
        .unwrap();
    assert_eq!(created["body"]["data"]["id"], t.id().as_str());
    assert!(
        created["body"]["data"]["amount"].is_i64(),
        "money is an integer in events"
    );
}

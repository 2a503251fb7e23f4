-- The store's create, as PostgresPaymentSessionStore sends it: one statement, its own
-- transaction (payment_session_create_committed: the cart's lock, the session, its change
-- pending for the sequencer, committed before the statement completes).
\set n random(1, 1099511627775)
CALL payment_session_create_committed('ps_0' || lpad(upper(to_hex(:n::BIGINT)), 25, '0'), 'pgbench-' || :n::BIGINT, 'stripe', 'pending', '{"client_secret": "pi_123_secret"}', NULL, 4200, 'usd', false, timestamptz '2026-05-28 20:26:40Z', '{"id": "ps_0","cart_id": "pgbench","provider_id": "stripe","is_selected": false,"status": "pending","data": {"client_secret": "pi_123_secret"},"idempotency_key": null,"amount": 4200,"currency_code": "usd","is_initiated": false,"payment_authorized_at": null,"created_at": "2026-05-28T20:26:40.000000Z","updated_at": "2026-05-28T20:26:40.000000Z"}', NULL);

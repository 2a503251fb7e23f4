-- The store's create, as PostgresPaymentSessionStore sends it: the cart's lock, the session,
-- its change pending for the sequencer, in one transaction.
\set n random(1, 1099511627775)
BEGIN;
SELECT count(payment_session_lock_cart(cart)) FROM unnest(ARRAY['pgbench-' || :n::BIGINT]) WITH ORDINALITY AS carts (cart, position);
INSERT INTO payment_sessions (id, cart_id, provider_id, is_selected, status, data_text, idempotency_key, amount, currency_code, is_initiated, payment_authorized_at, created_at, updated_at) VALUES ('ps_0' || lpad(upper(to_hex(:n::BIGINT)), 25, '0'), 'pgbench-' || :n::BIGINT, 'stripe', false, 'pending', '{"client_secret": "pi_123_secret"}', NULL, 4200, 'usd', false, NULL, timestamptz '2026-05-28 20:26:40Z', timestamptz '2026-05-28 20:26:40Z');
INSERT INTO payment_session_pending_changes (position, session_id, cart_id, kind, status_before, status_after, committed_at, session) VALUES (1, 'ps_0' || lpad(upper(to_hex(:n::BIGINT)), 25, '0'), 'pgbench-' || :n::BIGINT, 'created', NULL, 'pending', timestamptz '2026-05-28 20:26:40Z', '{"id": "ps_0","cart_id": "pgbench","provider_id": "stripe","is_selected": false,"status": "pending","data": {"client_secret": "pi_123_secret"},"idempotency_key": null,"amount": 4200,"currency_code": "usd","is_initiated": false,"payment_authorized_at": null,"created_at": "2026-05-28T20:26:40.000000Z","updated_at": "2026-05-28T20:26:40.000000Z"}');
COMMIT;

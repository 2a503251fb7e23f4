-- The floor: the session's row alone, one statement.
\set n random(1, 1099511627775)
INSERT INTO payment_sessions (id, cart_id, provider_id, is_selected, status, data_text, idempotency_key, amount, currency_code, is_initiated, payment_authorized_at, created_at, updated_at) VALUES ('ps_0' || lpad(upper(to_hex(:n::BIGINT)), 25, '0'), 'pgbench-' || :n::BIGINT, 'stripe', false, 'pending', '{"client_secret":"pi_123_secret"}', NULL, 4200, 'usd', false, NULL, timestamptz '2026-05-28 20:26:40Z', timestamptz '2026-05-28 20:26:40Z');

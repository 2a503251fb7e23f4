-- The store's get by id, as PostgresPaymentSessionStore prepares it (its columns, from the
-- store's table); the id is one of the 1,024 sessions PostgresScaling made, `ps_0` and n in
-- 25 hex digits.
\set n random(1, 1024)
SELECT id, cart_id, provider_id, is_selected, status, data_text, idempotency_key, amount, currency_code, is_initiated, payment_authorized_at, created_at, updated_at FROM payment_sessions WHERE id = 'ps_0' || lpad(upper(to_hex(:n::BIGINT)), 25, '0');

#if PostgreSQL
import Logging
import PaymentSessionsCore
import PostgresNIO

/// The store's tables, created and migrated by the store itself.
///
/// `payment_session_schema` holds one row: the schema version. Opening a store locks that
/// row (a row lock, not a table or advisory lock: CockroachDB and YugabyteDB take it too),
/// applies the migrations past it in one transaction, and refuses a version newer than
/// this library knows. The rules live in the schema as well as in the code:
///
/// | constraint | rule |
/// |---|---|
/// | primary key `id` | one session per id |
/// | unique `(cart_id, provider_id)` | one session per cart and provider |
/// | partial unique index on `cart_id` where `is_selected` | at most one selected session per cart |
/// | unique `idempotency_key`, and `payment_session_idempotency_keys` | one session per key; a deleted session's key stays reserved |
/// | trigger over `payment_session_transitions` | status moves follow the transition table |
/// | checks | ids, statuses, amounts, currencies and times are well formed |
/// | `payment_session_pending_changes` keyed by `(xact, position)`, numbered into `payment_session_changes` | the change feed: see ``PostgresFeedSequencer`` |
/// | `payment_session_lock_cart(cart)`, taken before a transaction's first write | a cart's changes commit in transaction id order |
///
/// Times are `timestamptz`, which holds exactly the model's microseconds (read and written
/// through ``PostgresTimestamp``, never a floating-point `Date`). `data_text` holds the
/// compact JSON exactly as given, because the store promises the provider its bytes back
/// and `jsonb` reorders keys and respells numbers; `data` is the same value as `jsonb`,
/// generated from it, for an operator's queries and indexes (`data->>'client_secret'`).
enum PostgresSchema {
    /// The version this library writes.
    static let currentVersion: Int32 = 6
    /// The partial unique index that keeps one selected session per cart.
    static let oneSelectedIndex = "payment_sessions_one_selected_per_cart"

    /// Each migration's statements; migration `n` takes the schema from `n` to `n + 1`.
    static let migrations: [[PostgresQuery]] = [
        [
            """
            CREATE TABLE payment_sessions (
                id TEXT PRIMARY KEY CHECK (id ~ '^ps_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
                cart_id TEXT NOT NULL CHECK (octet_length(cart_id) BETWEEN 1 AND 255),
                provider_id TEXT NOT NULL CHECK (octet_length(provider_id) BETWEEN 1 AND 255),
                is_selected BOOLEAN NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'requires_more', 'authorized', 'error', 'canceled')),
                data TEXT NOT NULL,
                idempotency_key TEXT CHECK (octet_length(idempotency_key) BETWEEN 1 AND 511),
                amount BIGINT CHECK (amount BETWEEN 0 AND 9007199254740991),
                currency_code TEXT CHECK (currency_code ~ '^[a-z]{3}$'),
                is_initiated BOOLEAN NOT NULL,
                payment_authorized_at_us BIGINT,
                created_at_us BIGINT NOT NULL,
                updated_at_us BIGINT NOT NULL,
                CONSTRAINT payment_sessions_cart_provider UNIQUE (cart_id, provider_id),
                CONSTRAINT payment_sessions_idempotency_key UNIQUE (idempotency_key),
                CONSTRAINT payment_sessions_canceled_not_selected CHECK (NOT (is_selected AND status = 'canceled')),
                CONSTRAINT payment_sessions_authorization_recorded
                    CHECK (status <> 'authorized' OR amount IS NULL OR payment_authorized_at_us IS NOT NULL)
            )
            """,
            "CREATE UNIQUE INDEX payment_sessions_one_selected_per_cart ON payment_sessions (cart_id) WHERE is_selected",
            "CREATE INDEX payment_sessions_updated_at ON payment_sessions (updated_at_us)",
            """
            CREATE TABLE payment_session_idempotency_keys (
                key TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                deleted_at_us BIGINT
            )
            """,
            """
            CREATE TABLE payment_session_transitions (
                from_status TEXT NOT NULL,
                to_status TEXT NOT NULL,
                PRIMARY KEY (from_status, to_status)
            )
            """,
            """
            CREATE FUNCTION payment_sessions_check_transition() RETURNS trigger LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
            BEGIN
                IF NEW.status <> OLD.status AND NOT EXISTS (
                    SELECT 1 FROM payment_session_transitions WHERE from_status = OLD.status AND to_status = NEW.status
                ) THEN
                    RAISE EXCEPTION 'payment session % cannot move from % to %', OLD.id, OLD.status, NEW.status
                        USING ERRCODE = '23514', CONSTRAINT = 'payment_session_transitions';
                END IF;
                RETURN NEW;
            END
            $$
            """,
            """
            CREATE TRIGGER payment_sessions_transition BEFORE UPDATE OF status ON payment_sessions
                FOR EACH ROW EXECUTE FUNCTION payment_sessions_check_transition()
            """,
        ],
        // 2: the change feed. `session` is the session's JSON form after the change.
        [
            """
            CREATE TABLE payment_session_changes (
                sequence BIGINT PRIMARY KEY,
                session_id TEXT NOT NULL,
                cart_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                status_before TEXT,
                status_after TEXT,
                committed_at_us BIGINT NOT NULL,
                session TEXT
            )
            """,
            """
            CREATE TABLE payment_session_change_counter (
                singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
                last BIGINT NOT NULL
            )
            """,
            "INSERT INTO payment_session_change_counter (last) VALUES (0)",
            """
            CREATE TABLE payment_session_consumers (
                name TEXT PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 255),
                position BIGINT NOT NULL
            )
            """,
        ],
        // 3: a feed with no row every writer takes. A write inserts its changes here, under
        // its own transaction id; the sequencer numbers them into `payment_session_changes`.
        // The counter row stays, as the sequencer's cursor.
        [
            """
            CREATE TABLE payment_session_pending_changes (
                xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
                position INTEGER NOT NULL,
                session_id TEXT NOT NULL,
                cart_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                status_before TEXT,
                status_after TEXT,
                committed_at_us BIGINT NOT NULL,
                session TEXT,
                PRIMARY KEY (xact, position)
            )
            """,
            """
            CREATE FUNCTION payment_session_lock_cart(cart TEXT) RETURNS BOOLEAN LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
            BEGIN
                -- The first key names the store (its schema), so that the sequencer finds
                -- this store's writers in pg_locks, and stores in other schemas share no lock.
                PERFORM pg_advisory_xact_lock(
                    hashtext(current_schema()) # \(unescaped: String(PostgresFeedSequencer.cartLockSeed)), hashtext(cart));
                RETURN TRUE;
            END
            $$
            """,
            sequenceChangesFunction(committedAt: "committed_at_us"),
        ],
        // 4: types an operator expects. `data_text` keeps the provider's JSON exactly (key
        // order, number spelling); `data` is the same as `jsonb`, generated from it, for
        // queries and indexes (NULL for the rare text jsonb cannot hold: a `\u0000` escape,
        // a number beyond `numeric`). Times become `timestamptz`, converted exactly.
        [
            "ALTER TABLE payment_sessions RENAME COLUMN data TO data_text",
            """
            CREATE FUNCTION payment_session_data_jsonb(data_text TEXT) RETURNS jsonb
            LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
            BEGIN
                RETURN data_text::jsonb;
            EXCEPTION WHEN data_exception THEN
                RETURN NULL;
            END
            $$
            """,
            """
            ALTER TABLE payment_sessions
                ADD COLUMN data jsonb GENERATED ALWAYS AS (payment_session_data_jsonb(data_text)) STORED,
                ALTER COLUMN payment_authorized_at_us TYPE timestamptz
                    USING \(unescaped: timestamp(fromMicroseconds: "payment_authorized_at_us")),
                ALTER COLUMN created_at_us TYPE timestamptz USING \(unescaped: timestamp(fromMicroseconds: "created_at_us")),
                ALTER COLUMN updated_at_us TYPE timestamptz USING \(unescaped: timestamp(fromMicroseconds: "updated_at_us"))
            """,
            "ALTER TABLE payment_sessions RENAME COLUMN payment_authorized_at_us TO payment_authorized_at",
            "ALTER TABLE payment_sessions RENAME COLUMN created_at_us TO created_at",
            "ALTER TABLE payment_sessions RENAME COLUMN updated_at_us TO updated_at",
            """
            ALTER TABLE payment_session_idempotency_keys
                ALTER COLUMN deleted_at_us TYPE timestamptz USING \(unescaped: timestamp(fromMicroseconds: "deleted_at_us"))
            """,
            "ALTER TABLE payment_session_idempotency_keys RENAME COLUMN deleted_at_us TO deleted_at",
            """
            ALTER TABLE payment_session_changes
                ALTER COLUMN committed_at_us TYPE timestamptz USING \(unescaped: timestamp(fromMicroseconds: "committed_at_us"))
            """,
            "ALTER TABLE payment_session_changes RENAME COLUMN committed_at_us TO committed_at",
            """
            ALTER TABLE payment_session_pending_changes
                ALTER COLUMN committed_at_us TYPE timestamptz USING \(unescaped: timestamp(fromMicroseconds: "committed_at_us"))
            """,
            "ALTER TABLE payment_session_pending_changes RENAME COLUMN committed_at_us TO committed_at",
            sequenceChangesFunction(committedAt: "committed_at", replace: true),
            // A new session, its idempotency key and its pending change in one statement: a
            // create that needs no decision (no selection to move, the key new) is one round
            // trip, its own transaction. The cart's lock comes first, as in every write. A
            // taken key returns 'key' having written nothing; a refused row raises
            // `\(unescaped: PostgresCreateSession.refusedState)`, undoing the key: the store then runs the create as a
            // transaction, which decides (see PostgresPaymentSessionStore.create).
            """
            CREATE FUNCTION payment_session_create(
                new_id TEXT, new_cart_id TEXT, new_provider_id TEXT, new_status TEXT, new_data_text TEXT, new_key TEXT,
                new_amount BIGINT, new_currency_code TEXT, new_is_initiated BOOLEAN, new_created_at timestamptz,
                new_session TEXT
            ) RETURNS TEXT LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
            BEGIN
                PERFORM payment_session_lock_cart(new_cart_id);
                IF new_key IS NOT NULL THEN
                    INSERT INTO payment_session_idempotency_keys (key, session_id) VALUES (new_key, new_id)
                    ON CONFLICT DO NOTHING;
                    IF NOT FOUND THEN
                        RETURN 'key';
                    END IF;
                END IF;
                INSERT INTO payment_sessions (\(unescaped: PostgresSessionRow.columns))
                VALUES (new_id, new_cart_id, new_provider_id, FALSE, new_status, new_data_text, new_key, new_amount,
                    new_currency_code, new_is_initiated, NULL, new_created_at, new_created_at)
                ON CONFLICT DO NOTHING;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'payment session % refused by a unique constraint', new_id
                        USING ERRCODE = '\(unescaped: PostgresCreateSession.refusedState)';
                END IF;
                INSERT INTO payment_session_pending_changes
                    (position, session_id, cart_id, kind, status_before, status_after, committed_at, session)
                VALUES (1, new_id, new_cart_id, 'created', NULL, new_status, new_created_at, new_session);
                RETURN 'created';
            END
            $$
            """,
            // An operation's writes, decided in Swift on rows read without locks, applied in
            // one statement as its own transaction if those rows are unchanged: a select
            // switch is two reads and this (see PostgresWriteSet). Carts locked first, in the
            // order given; each row read must still carry its `updated_at` (else
            // `\(unescaped: PostgresApplyWrites.staleState)`, nothing written, and the operation runs again); keys
            // claimed, rows written in the order decided, changes left pending. A row or key a
            // unique constraint refuses raises `\(unescaped: PostgresCreateSession.refusedState)`. Times are microseconds
            // since 1970 (NULL as the smallest BIGINT), `amount` NULL as -1.
            """
            CREATE FUNCTION payment_session_time(microseconds BIGINT) RETURNS timestamptz
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
                SELECT CASE WHEN microseconds = -9223372036854775808 THEN NULL
                    ELSE \(unescaped: timestamp(fromMicroseconds: "microseconds")) END
            $$
            """,
            applyFunction(checkingCarts: false),
        ],
        // 5: the one-statement writes commit inside the statement. Run as a statement of
        // its own, a function's transaction commits after the server has said the statement
        // completed (at the protocol's Sync), and postgres-nio reports the statement's
        // success then: a commit that failed (a deferred check) or never happened (the
        // connection lost first) looked applied. A procedure that commits before it returns
        // reports either as the statement's own failure. (No `SET search_path` here: a
        // procedure with one cannot commit; the caller's path finds the functions, as it
        // found the procedure.)
        [
            """
            CREATE PROCEDURE payment_session_create_committed(
                new_id TEXT, new_cart_id TEXT, new_provider_id TEXT, new_status TEXT, new_data_text TEXT, new_key TEXT,
                new_amount BIGINT, new_currency_code TEXT, new_is_initiated BOOLEAN, new_created_at timestamptz,
                new_session TEXT, INOUT outcome TEXT DEFAULT NULL
            ) LANGUAGE plpgsql AS $$
            BEGIN
                outcome := payment_session_create(new_id, new_cart_id, new_provider_id, new_status, new_data_text, new_key,
                    new_amount, new_currency_code, new_is_initiated, new_created_at, new_session);
                COMMIT;
            END
            $$
            """,
            applyProcedure(checkingCarts: false),
        ],
        // 6: the two helpers every write calls become SQL the planner inlines. A SQL
        // function it cannot inline is parsed again in every statement that calls it, and a
        // PL/pgSQL one with `SET search_path` saves and restores the setting on every call:
        // together most of a write's time on the server. `payment_session_time` was declared
        // IMMUTABLE over a STABLE body (`timestamptz + interval`), which forbids inlining;
        // it is STABLE now. The cart lock's first key, the store's, is computed once here
        // from the schema's name, as `current_schema()` gave it under the old function's
        // `SET search_path FROM CURRENT`, so that the body needs no search path. And the
        // one-statement apply also checks carts read whole, so that deleting a cart's
        // sessions is one statement too; the version 5 apply stays beside it (an overload),
        // for a process of the previous version still running while this one migrates.
        [
            """
            CREATE OR REPLACE FUNCTION payment_session_time(microseconds BIGINT) RETURNS timestamptz
            LANGUAGE sql STABLE PARALLEL SAFE AS $$
                SELECT CASE WHEN microseconds = -9223372036854775808 THEN NULL
                    ELSE \(unescaped: timestamp(fromMicroseconds: "microseconds")) END
            $$
            """,
            """
            DO $lock$ BEGIN
                EXECUTE format(
                    'CREATE OR REPLACE FUNCTION payment_session_lock_cart(cart TEXT) RETURNS BOOLEAN LANGUAGE sql '
                        || 'AS $body$ SELECT pg_advisory_xact_lock((%s)::INTEGER, hashtext(cart)) IS NOT NULL $body$',
                    hashtext(current_schema()) # \(unescaped: String(PostgresFeedSequencer.cartLockSeed)));
            END $lock$
            """,
            applyFunction(checkingCarts: true),
            applyProcedure(checkingCarts: true),
            // The transition check runs only when the status moves: most updates rewrite
            // the status column unchanged, and a PL/pgSQL call per row was a cost of its own.
            "DROP TRIGGER payment_sessions_transition ON payment_sessions",
            """
            CREATE TRIGGER payment_sessions_transition BEFORE UPDATE OF status ON payment_sessions
                FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION payment_sessions_check_transition()
            """,
        ],
    ]

    /// `payment_session_apply`: see ``PostgresApplyWrites``. Version 4 made it; version 6
    /// made it again, `checkingCarts`, with the carts whose every session the operation read
    /// (`complete_carts`, and how many: `complete_counts`), so that deleting a cart's
    /// sessions runs optimistically too.
    static func applyFunction(checkingCarts: Bool) -> PostgresQuery {
        """
        CREATE FUNCTION payment_session_apply(
            \(unescaped: applyParameters(checkingCarts: checkingCarts))
        ) RETURNS VOID LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        DECLARE
            lock_cart TEXT;
            i INTEGER;
        BEGIN
            FOREACH lock_cart IN ARRAY lock_carts LOOP
                PERFORM payment_session_lock_cart(lock_cart);
            END LOOP;
            FOR i IN 1..coalesce(array_length(expected_ids, 1), 0) LOOP
                PERFORM 1 FROM payment_sessions s
                WHERE s.id = expected_ids[i] AND s.updated_at = payment_session_time(expected_updated_at[i]) FOR UPDATE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'payment session % changed since it was read', expected_ids[i]
                        USING ERRCODE = '\(unescaped: PostgresApplyWrites.staleState)';
                END IF;
            END LOOP;
            \(unescaped: checkingCarts ? cartsCheck : "")
            FOR i IN 1..coalesce(array_length(key_claims, 1), 0) LOOP
                INSERT INTO payment_session_idempotency_keys (key, session_id) VALUES (key_claims[i], key_claim_ids[i])
                ON CONFLICT DO NOTHING;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'idempotency key % is taken', key_claims[i]
                        USING ERRCODE = '\(unescaped: PostgresCreateSession.refusedState)';
                END IF;
            END LOOP;
            FOR i IN 1..coalesce(array_length(row_ops, 1), 0) LOOP
                IF row_ops[i] = 'insert' THEN
                    INSERT INTO payment_sessions (\(unescaped: PostgresSessionRow.columns))
                    VALUES (row_ids[i], row_cart_ids[i], row_provider_ids[i], row_selected[i], row_statuses[i], row_data_texts[i],
                        NULLIF(row_keys[i], ''), NULLIF(row_amounts[i], -1), NULLIF(row_currency_codes[i], ''), row_initiated[i],
                        payment_session_time(row_authorized_at[i]), payment_session_time(row_created_at[i]),
                        payment_session_time(row_updated_at[i]))
                    ON CONFLICT DO NOTHING;
                    IF NOT FOUND THEN
                        RAISE EXCEPTION 'payment session % refused by a unique constraint', row_ids[i]
                            USING ERRCODE = '\(unescaped: PostgresCreateSession.refusedState)';
                    END IF;
                ELSIF row_ops[i] = 'update' THEN
                    UPDATE payment_sessions s SET is_selected = row_selected[i], status = row_statuses[i], data_text = row_data_texts[i],
                        amount = NULLIF(row_amounts[i], -1), currency_code = NULLIF(row_currency_codes[i], ''),
                        is_initiated = row_initiated[i], payment_authorized_at = payment_session_time(row_authorized_at[i]),
                        updated_at = payment_session_time(row_updated_at[i])
                    WHERE s.id = row_ids[i];
                ELSE
                    DELETE FROM payment_sessions s WHERE s.id = row_ids[i];
                END IF;
            END LOOP;
            FOR i IN 1..coalesce(array_length(key_reservations, 1), 0) LOOP
                UPDATE payment_session_idempotency_keys k SET deleted_at = payment_session_time(written_at)
                WHERE k.key = key_reservations[i] AND k.session_id = key_reservation_ids[i];
            END LOOP;
            INSERT INTO payment_session_pending_changes
                (position, session_id, cart_id, kind, status_before, status_after, committed_at, session)
            SELECT c.position, c.session_id, c.cart_id, c.kind, NULLIF(c.status_before, ''), NULLIF(c.status_after, ''),
                payment_session_time(written_at), NULLIF(c.session, '')
            FROM unnest(change_ids, change_carts, change_kinds, change_before, change_after, change_sessions)
                WITH ORDINALITY AS c (session_id, cart_id, kind, status_before, status_after, session, position);
        END
        $$
        """
    }

    /// The procedure that runs ``applyFunction(checkingCarts:)`` and commits (version 5;
    /// version 6 with `checkingCarts`).
    static func applyProcedure(checkingCarts: Bool) -> PostgresQuery {
        """
        CREATE PROCEDURE payment_session_apply_committed(
            \(unescaped: applyParameters(checkingCarts: checkingCarts))
        ) LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM payment_session_apply(lock_carts, expected_ids, expected_updated_at, key_claims, key_claim_ids,
                key_reservations, key_reservation_ids, row_ops, row_ids, row_cart_ids, row_provider_ids, row_selected,
                row_statuses, row_data_texts, row_keys, row_amounts, row_currency_codes, row_initiated, row_authorized_at,
                row_created_at, row_updated_at, change_ids, change_carts, change_kinds, change_before, change_after,
                change_sessions, written_at\(unescaped: checkingCarts ? ", complete_carts, complete_counts" : ""));
            COMMIT;
        END
        $$
        """
    }

    /// Version 6's check, after the carts are locked: each cart read whole still has as
    /// many sessions as were read (with the rows read unchanged, the same sessions, since
    /// every write to a cart takes its lock first).
    private static let cartsCheck = """
        FOR i IN 1..coalesce(array_length(complete_carts, 1), 0) LOOP
                    IF (SELECT count(*) FROM payment_sessions s WHERE s.cart_id = complete_carts[i]) <> complete_counts[i] THEN
                        RAISE EXCEPTION 'cart % changed since it was read', complete_carts[i]
                            USING ERRCODE = '\(PostgresApplyWrites.staleState)';
                    END IF;
                END LOOP;
        """

    /// The parameters of `payment_session_apply` and of the procedure that calls it.
    static func applyParameters(checkingCarts: Bool) -> String {
        guard checkingCarts else { return applyParametersOfVersionFour }
        return applyParametersOfVersionFour + ", complete_carts TEXT[], complete_counts INTEGER[]"
    }

    private static let applyParametersOfVersionFour = """
        lock_carts TEXT[], expected_ids TEXT[], expected_updated_at BIGINT[],
            key_claims TEXT[], key_claim_ids TEXT[], key_reservations TEXT[], key_reservation_ids TEXT[],
            row_ops TEXT[], row_ids TEXT[], row_cart_ids TEXT[], row_provider_ids TEXT[], row_selected BOOLEAN[], row_statuses TEXT[],
            row_data_texts TEXT[], row_keys TEXT[], row_amounts BIGINT[], row_currency_codes TEXT[], row_initiated BOOLEAN[],
            row_authorized_at BIGINT[], row_created_at BIGINT[], row_updated_at BIGINT[],
            change_ids TEXT[], change_carts TEXT[], change_kinds TEXT[], change_before TEXT[], change_after TEXT[],
            change_sessions TEXT[], written_at BIGINT
        """

    /// The sequencer, `payment_session_sequence_changes`: see ``PostgresFeedSequencer``.
    /// Version 3 made it; version 4 remade it when the feed's time became `committed_at`.
    static func sequenceChangesFunction(committedAt: String, replace: Bool = false) -> PostgresQuery {
        """
        CREATE \(unescaped: replace ? "OR REPLACE " : "")FUNCTION payment_session_sequence_changes(
            target TEXT, OUT moved BIGINT, OUT held_back BIGINT, OUT last BIGINT, OUT next_xact TEXT
        ) LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
        DECLARE
            next_id BIGINT;
            oldest_writer BIGINT;
            horizon xid8;
            base BIGINT;
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended(current_schema(), \(unescaped: String(PostgresFeedSequencer.sequencerLockSeed))));
            SELECT c.last INTO base FROM payment_session_change_counter c;
            -- Every transaction that ended before now has an id below `next_id`; one that
            -- gets an id from now on gets one at or above it.
            next_xact := pg_snapshot_xmax(pg_current_snapshot())::TEXT;
            next_id := next_xact::BIGINT;
            -- The store's writers still running with an id: they hold a cart's lock,
            -- taken before their id (pg_locks is read in one pass, so once).
            WITH locks AS MATERIALIZED (
                SELECT locktype, classid, objsubid, pid, transactionid, mode, granted FROM pg_locks
            ), writers AS (
                SELECT x.transactionid::TEXT::BIGINT AS low FROM locks a JOIN locks x
                    ON x.pid = a.pid AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock' AND x.granted
                WHERE a.locktype = 'advisory' AND a.objsubid = 2 AND a.granted
                    AND a.classid = (hashtext(current_schema()) # \(unescaped: String(PostgresFeedSequencer.cartLockSeed)))::OID
            )
            -- pg_locks shows 32-bit ids: widened to the 64-bit id nearest `next_id` (a
            -- running id is within 2^31 of it, below or, assigned since, above).
            SELECT min(next_id + CASE
                WHEN w.low - (next_id & 4294967295) > 2147483647 THEN w.low - (next_id & 4294967295) - 4294967296
                WHEN w.low - (next_id & 4294967295) < -2147483648 THEN w.low - (next_id & 4294967295) + 4294967296
                ELSE w.low - (next_id & 4294967295) END)
            INTO oldest_writer FROM writers w;
            -- Below the horizon, every transaction that could still add a change to this
            -- store has ended: no change with a smaller id can appear.
            horizon := LEAST(next_id, oldest_writer)::TEXT::xid8;
            WITH ready AS (
                DELETE FROM payment_session_pending_changes p WHERE p.xact < horizon RETURNING p.*
            )
            INSERT INTO payment_session_changes
                (sequence, session_id, cart_id, kind, status_before, status_after, \(unescaped: committedAt), session)
            SELECT base + row_number() OVER (ORDER BY r.xact, r.position), r.session_id, r.cart_id, r.kind,
                r.status_before, r.status_after, r.\(unescaped: committedAt), r.session
            FROM ready r;
            GET DIAGNOSTICS moved = ROW_COUNT;
            last := base + moved;
            IF moved > 0 THEN
                UPDATE payment_session_change_counter SET last = base + moved;
                PERFORM pg_notify('\(unescaped: PostgresChangeLog.channel)', (base + moved)::TEXT);
            END IF;
            -- Committed changes still pending (below `target` when given): held back.
            SELECT count(*) INTO held_back FROM payment_session_pending_changes p
            WHERE target IS NULL OR p.xact < target::xid8;
        END
        $$
        """
    }

    /// SQL turning a column of microseconds since 1970 into the same instant as
    /// `timestamptz`, exactly: whole seconds and the microseconds apart, so that no factor
    /// passes through a `double` beyond its 53 bits.
    static func timestamp(fromMicroseconds column: String) -> String {
        "timestamptz 'epoch' + (\(column) / 1000000) * interval '1 second' + (\(column) % 1000000) * interval '1 microsecond'"
    }

    /// The transition table's rows, from ``PaymentSessionStatus/canMove(to:)``.
    static var transitions: [(from: String, to: String)] {
        PaymentSessionStatus.allCases.flatMap { from in
            PaymentSessionStatus.allCases.filter { $0 != from && from.canMove(to: $0) }.map { (from.rawValue, $0.rawValue) }
        }
    }

    /// Creates or migrates the schema on `connection`, or refuses a newer one. Returns the
    /// version found before (0 for a new database).
    ///
    /// With `create` false, a database without the store's tables throws
    /// ``PaymentSessionError/storeNotFound(location:)`` naming `location`.
    static func prepare(
        on connection: PostgresConnection, create: Bool, location: String, logger: Logger
    ) async throws -> Int32 {
        // The usual case, a current schema, is one read and writes nothing.
        let existing = try await readVersionIfPresent(on: connection, logger: logger)
        if let existing {
            try refuseNewer(existing)
            if existing == currentVersion { return existing }
        }
        // An existing store of an older version is migrated also when not creating, as
        // opening it for writing would: a reader of this version needs what the migrations add.
        if !create, (existing ?? 0) == 0 { throw PaymentSessionError.storeNotFound(location: location) }
        // Two processes opening a new database at once: both may try to create the version
        // table; the loser's CREATE fails on the catalog (a duplicate key, table or type),
        // and it goes on.
        do {
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS payment_session_schema (
                    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
                    version INTEGER NOT NULL
                )
                """, logger: logger)
        } catch let error as PSQLError
            where ["23505", "42P07", "42710"].contains(error.serverInfo?[.sqlState] ?? "")
        {}
        try await connection.query("BEGIN", logger: logger)
        do {
            try await connection.query(
                "INSERT INTO payment_session_schema (version) VALUES (0) ON CONFLICT DO NOTHING", logger: logger)
            let found = try await readVersion(on: connection, lock: true, logger: logger)
            try refuseNewer(found)
            // Every migration due and the version in one round trip (one `DO` block running
            // each statement): a new store's schema is made in a handful of round trips, not
            // one per statement.
            var script: [String] = []
            for version in Int(found)..<Int(currentVersion) {
                logger.notice(
                    "migrating the payment session schema",
                    metadata: ["from": "\(version)", "to": "\(version + 1)"])
                script += migrations[version].map(\.sql)
                if version == 0 { script.append(transitionRows) }
            }
            script.append("UPDATE payment_session_schema SET version = \(currentVersion)")
            let block = script.map { "EXECUTE $statement$\($0)$statement$;" }.joined(separator: "\n")
            try await connection.query(PostgresQuery(unsafeSQL: "DO $migrate$ BEGIN\n\(block)\nEND $migrate$"), logger: logger)
            try await connection.query("COMMIT", logger: logger)
            return found
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// The transition table's rows as one `INSERT` (the statuses are fixed lower-case words).
    static var transitionRows: String {
        let rows = transitions.map { "('\($0.from)', '\($0.to)')" }.joined(separator: ", ")
        return "INSERT INTO payment_session_transitions (from_status, to_status) VALUES \(rows)"
    }

    /// The recorded version, or `nil` when the database has no store (no version table).
    private static func readVersionIfPresent(on connection: PostgresConnection, logger: Logger) async throws -> Int32? {
        do {
            return try await readVersion(on: connection, lock: false, logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "42P01" {
            return nil
        }
    }

    private static func readVersion(on connection: PostgresConnection, lock: Bool, logger: Logger) async throws -> Int32 {
        let rows =
            lock
            ? try await connection.query("SELECT version FROM payment_session_schema FOR UPDATE", logger: logger)
            : try await connection.query("SELECT version FROM payment_session_schema", logger: logger)
        var version: Int32 = 0
        for try await (found) in rows.decode(Int32.self) { version = found }
        return version
    }

    private static func refuseNewer(_ version: Int32) throws {
        if version > currentVersion {
            throw PaymentSessionError.unsupportedFormat(found: UInt32(version), supported: UInt32(currentVersion))
        }
    }
}
#endif

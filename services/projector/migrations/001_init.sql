-- The read model: current state per order, full event history, applied positions.
-- `orders.state` is the folded OrderState as JSON (camelCase keys); the other columns
-- are that state flattened for queries.

create table orders (
    order_id        text primary key,
    client_order_id text,
    order_type      text not null,
    status          text not null,
    token_in        text not null,
    token_out       text not null,
    amount_in       numeric(39, 0) not null,
    slippage_bps    int not null,
    venue           text,
    expected_out    numeric(39, 0),
    min_out         numeric(39, 0),
    amount_out      numeric(39, 0),
    signature       text,
    attempts        int not null default 0,
    failure_code    text,
    failure_reason  text,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    last_seq        int not null,
    last_stream_seq bigint not null,
    state           jsonb not null
);

-- Newest first, with order_id as the tie-breaker of the pagination cursor.
create index orders_created_idx on orders (created_at desc, order_id desc);
create index orders_status_created_idx on orders (status, created_at desc, order_id desc);
-- Not unique: idempotent submission is enforced by the log, not by the read model.
create index orders_client_order_id_idx on orders (client_order_id);

create table order_events (
    order_id    text not null,
    seq         int not null,
    stream_seq  bigint not null,
    event_type  text not null,
    occurred_at timestamptz not null,
    payload     jsonb not null,
    primary key (order_id, seq)
);

create table projector_positions (
    name       text primary key,
    stream_seq bigint not null,
    updated_at timestamptz not null default now()
);

-- Logged events the state machine refused. The order row keeps its last valid state;
-- the event itself is still in order_events, which mirrors the log.
create table projector_rejects (
    order_id    text not null,
    seq         int not null,
    stream_seq  bigint not null,
    event_type  text not null,
    reason      text not null,
    rejected_at timestamptz not null default now(),
    primary key (order_id, seq)
);

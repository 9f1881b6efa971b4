-- The loader's raw schema. Events are immutable: inserted once, never updated.
-- Every statement is idempotent; the caller holds an advisory lock so that
-- concurrent first runs do not race on the catalog.

create schema if not exists raw;

-- One row per run: the job's own key mapped to the ledger's integer id.
create table if not exists raw.runs (
    pipeline_id bigint generated always as identity primary key,
    run_key text not null unique
    check (char_length(run_key) between 1 and 200),
    pipeline_name text not null
    check (char_length(pipeline_name) between 1 and 200),
    registered_at timestamptz not null default now()
);

-- Set by `loader prune` when the run's raw events are deleted: its history is
-- closed, and a late event for it is quarantined rather than re-opening it.
alter table raw.runs add column if not exists pruned_at timestamptz;

-- One row per (run, stage): its integer id, stable across full refreshes.
create table if not exists raw.stages (
    stage_id bigint generated always as identity primary key,
    pipeline_id bigint not null references raw.runs (pipeline_id),
    stage_name text not null
    check (char_length(stage_name) between 1 and 200),
    registered_at timestamptz not null default now(),
    unique (pipeline_id, stage_name)
);

-- No foreign keys here: the loader resolves both ids from the registries in the
-- same transaction, and per-row FK triggers would halve bulk-load throughput.
create table if not exists raw.run_events (
    event_id uuid primary key,
    pipeline_id bigint not null,
    stage_id bigint,
    status text not null
    check (status in ('pending', 'running', 'completed', 'failed')),
    event_time timestamptz not null,
    records_processed bigint check (records_processed >= 0),
    error_message text,
    attempt integer not null default 1 check (attempt >= 1),
    attributes jsonb,
    loaded_at timestamptz not null default now(),
    -- The loading transaction: dbt picks up exactly what committed since its
    -- last run by comparing this with the snapshot it recorded then.
    load_xid xid8 not null default pg_current_xact_id()
);

create index if not exists run_events_pipeline_id_idx
on raw.run_events (pipeline_id);

create index if not exists run_events_load_xid_idx
on raw.run_events (load_xid);

create index if not exists run_events_loaded_at_idx
on raw.run_events (loaded_at);

-- Lines that broke the contract, byte for byte, with the reason.
create table if not exists raw.quarantined_events (
    quarantine_id bigint generated always as identity primary key,
    origin text not null,
    line_number bigint,
    reason text not null,
    raw_line bytea not null,
    quarantined_at timestamptz not null default now()
);

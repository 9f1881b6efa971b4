-- The loader's raw schema. Events are immutable: inserted once, never updated.
-- Every statement is idempotent; the caller holds an advisory lock so that
-- concurrent first runs do not race on the catalog.
-- `init` runs on a ledger in use: it checks the catalog and runs a statement
-- only when its object is missing (`if not exists` alone still takes the
-- table's lock, and ADD COLUMN an ACCESS EXCLUSIVE one). So each statement is
-- one of: create schema|table|index if not exists, alter table ... add column
-- if not exists, alter table ... drop constraint if exists, create or replace
-- view|function (always run: each locks only itself).
-- loader/schema.py knows these forms and refuses others.

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
-- No foreign key to raw.runs, as on raw.run_events below: the loader registers
-- a stage only for a run it has just resolved under the run's lock, and the
-- key's per-row check was a third of a bulk load's stage registration. dbt's
-- source tests check the relationship (models/staging/raw/_raw__sources.yml).
create table if not exists raw.stages (
    stage_id bigint generated always as identity primary key,
    pipeline_id bigint not null,
    stage_name text not null
    check (char_length(stage_name) between 1 and 200),
    registered_at timestamptz not null default now(),
    unique (pipeline_id, stage_name)
);

-- A ledger made before the key was dropped has it, under PostgreSQL's name.
alter table raw.stages drop constraint if exists stages_pipeline_id_fkey;

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

-- Events of a run_key the ledger does not know yet, when nothing in their batch
-- names the run's pipeline: they wait here, whole, until an event naming the
-- run arrives (from any process, in any order); then the loader moves them into
-- raw.run_events. After LEDGER_PARKED_MAX_AGE they go to the quarantine.
create table if not exists raw.parked_events (
    event_id uuid primary key,
    run_key text not null,
    stage_name text,
    status text not null,
    event_time timestamptz not null,
    records_processed bigint,
    error_message text,
    attempt integer not null,
    attributes jsonb,
    origin text not null,
    line_number bigint,
    raw_line bytea not null,
    parked_at timestamptz not null default now()
);

create index if not exists parked_events_run_key_idx
on raw.parked_events (run_key);

create index if not exists parked_events_parked_at_idx
on raw.parked_events (parked_at);

-- What waits, per run: for `ledger parked` and for people.
create or replace view raw.parked_runs as
select
    run_key,
    count(*) as events,
    min(parked_at) as first_parked_at,
    max(parked_at) as last_parked_at,
    array_agg(distinct origin order by origin) as origins
from raw.parked_events
group by run_key;

-- OpenLineage events that are not about a run (DatasetEvents, JobEvents), as
-- `ledger serve` received them: the contract has no place for them, and
-- OpenLineage clients drop an event the server does not answer 2xx. The id is
-- derived from the content, so a client's retry is stored once.
create table if not exists raw.openlineage_other_events (
    event_id uuid primary key,
    event_kind text not null
    check (event_kind in ('DatasetEvent', 'JobEvent')),
    payload jsonb not null,
    received_at timestamptz not null default now()
);

-- The run's attempt (event contract, "Runs have attempts"): a flow retried
-- under the same run key re-opens its run, and its highest attempt decides.
-- Events stored before the column existed are of the first attempt.
alter table raw.run_events add column if not exists run_attempt integer
not null default 1 check (run_attempt >= 1);

alter table raw.parked_events add column if not exists run_attempt integer
not null default 1 check (run_attempt >= 1);

-- A job's event on a registered run takes this in its one insert statement
-- (loader/sql/writer/insert_resolved_events.sql): the run's shared lock, then
-- whether the run is still open, read with a snapshot taken after the lock
-- (a volatile function's statements each take their own): `ledger prune`
-- holds the same lock exclusively while it closes a run, so the event either
-- sees the run closed or makes prune wait and see it. Security invoker, with
-- its own search path: it runs with the loader's rights and nobody's objects.
create or replace function raw.lock_open_run(
    run_id bigint, lock_space integer
) returns boolean
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $$
begin
    perform pg_advisory_xact_lock_shared(
        lock_space, mod(run_id, 2147483647)::integer
    );
    return exists (
        select from raw.runs
        where runs.pipeline_id = run_id and runs.pruned_at is null
    );
end
$$;

-- Access control: three NOLOGIN group roles that login users are granted into
-- (`create role metabase login password '...' in role ledger_reader`).
--   ledger_loader       the loader: appends events to raw, reads the registries
--   ledger_transformer  dbt: reads raw, builds staging, public and marts
--   ledger_reader       BI tools: reads marts
-- Run it in the ledger's database after the raw schema exists, as a superuser
-- or as a role with CREATEROLE that owns the database and its raw schema.
-- `loader init` does so under its advisory lock. Every statement is
-- idempotent.

-- Only built-in functions and operators: a function planted in a schema that
-- others may create in (public) must never run with this script's rights. The
-- loader's connections pin this already; psql's do not.
set search_path = pg_catalog, pg_temp;

-- Roles are cluster-wide but the advisory lock is per database: an init of
-- another database on the same server may create a role between our check
-- and our create. Its error then only means that the role exists.
do $$
declare
    wanted record;
begin
    for wanted in
        select role_name, description
        from (values
            ('ledger_loader',
                'Pipeline Ledger loader: inserts run events into raw'),
            ('ledger_transformer',
                'Pipeline Ledger dbt: reads raw, builds staging, public, marts'),
            ('ledger_reader',
                'Pipeline Ledger BI: reads marts')
        ) as roles (role_name, description)
    loop
        if not exists (
            select from pg_catalog.pg_roles
            where rolname = wanted.role_name
        ) then
            begin
                execute format('create role %I nologin', wanted.role_name);
                execute format(
                    'comment on role %I is %L',
                    wanted.role_name, wanted.description
                );
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;

-- dbt creates a schema only when it is missing, and that needs CREATE on the
-- database, which the transformer does not get: the schemas it builds in are
-- made here instead, owned like raw by the ledger's user, so that an
-- administrator running this script does not take them away from it.
do $$
declare
    ledger_owner name := (
        select pg_get_userbyid(nspowner)
        from pg_catalog.pg_namespace
        where nspname = 'raw'
    );
begin
    if ledger_owner is null then
        raise exception 'the raw schema does not exist: run `loader init` first';
    end if;
    execute format(
        'create schema if not exists staging authorization %I', ledger_owner
    );
    execute format(
        'create schema if not exists marts authorization %I', ledger_owner
    );
end
$$;

-- Granted explicitly because hardened servers revoke these from PUBLIC. The
-- loader and dbt's incremental models both stage rows in temporary tables.
do $$
begin
    execute format(
        'grant connect, temporary on database %I'
        ' to ledger_loader, ledger_transformer',
        current_database()
    );
    execute format(
        'grant connect on database %I to ledger_reader', current_database()
    );
end
$$;

-- The loader: exactly what loader/writer.py runs. It selects the registries to
-- resolve ids, and `on conflict (event_id)` needs SELECT on its target column.
-- No UPDATE or TRUNCATE anywhere, and DELETE only of parked events, which the
-- loader moves into raw.run_events once their run is named (or into the
-- quarantine when nobody names it): `loader prune` runs as the owner.
grant usage on schema raw to ledger_loader;
grant select, insert on raw.runs, raw.stages to ledger_loader;
grant insert on raw.run_events, raw.quarantined_events to ledger_loader;
grant select (event_id) on raw.run_events to ledger_loader;
grant select, insert, delete on raw.parked_events to ledger_loader;
grant select on raw.parked_runs to ledger_loader;
grant execute on function raw.lock_open_run(bigint, integer) to ledger_loader;

-- dbt: reads every raw table (sources, freshness) and creates what it builds,
-- so it owns its views and tables and can replace them on every run.
grant usage on schema raw to ledger_transformer;
grant select on all tables in schema raw to ledger_transformer;
grant usage, create on schema staging, marts, public to ledger_transformer;

-- A database created before PostgreSQL 15 keeps, through upgrades, PUBLIC's
-- CREATE on schema public: any login, ledger_reader's included, could plant a
-- function there (percentile_cont, format) that dbt would call instead of the
-- built-in, with the transformer's rights. Revoked here; only the schema's
-- owner (or a superuser) may, and the notice says what happened either way.
do $$
begin
    if
        to_regnamespace('public') is not null
        and has_schema_privilege('public', 'public', 'create')
    then
        begin
            revoke create on schema public from public;
        exception when insufficient_privilege then
            null;
        end;
        if has_schema_privilege('public', 'public', 'create') then
            raise notice '%', 'PUBLIC may create in schema public, so any login'
            || ' can plant functions that dbt runs: its owner should run'
            || ' `revoke create on schema public from public`';
        else
            raise notice '%', 'revoked CREATE on schema public from PUBLIC'
            || ' (a database created before PostgreSQL 15): only'
            || ' ledger_transformer and the schema''s owner may create there';
        end if;
    end if;
end
$$;

-- BI: marts only. dbt's `grants` config (var reader_roles) grants SELECT on
-- every model it builds there; the defaults below also cover a table between
-- its creation and that grant, and tables made outside dbt.
grant usage on schema marts to ledger_reader;
alter default privileges in schema marts grant select on tables
to ledger_reader;

-- Setting another role's defaults needs its privileges: a superuser has them,
-- a CREATEROLE owner (PostgreSQL 16+) usually does not, and then dbt's grants
-- alone keep ledger_reader's access.
do $$
begin
    if pg_has_role('ledger_transformer', 'usage') then
        alter default privileges for role ledger_transformer in schema marts
        grant select on tables to ledger_reader;
    else
        raise notice 'ledger_transformer''s default privileges not set: %',
            'only its members may set them; dbt grants on marts instead';
    end if;
end
$$;

-- Marts built before the roles existed: grant what this user may grant.
do $$
declare
    relation regclass;
begin
    for relation in
        select pg_class.oid::regclass
        from pg_catalog.pg_class
        where
            pg_class.relnamespace = 'marts'::regnamespace
            and pg_class.relkind in ('r', 'p', 'v', 'm', 'f')
            and has_table_privilege(
                pg_class.oid, 'select with grant option'
            )
    loop
        execute format('grant select on %s to ledger_reader', relation);
    end loop;
end
$$;

-- `ledger serve`: DatasetEvents and JobEvents kept raw (`on conflict`
-- needs SELECT on its target column, event_id); dbt may read them.
grant insert on raw.openlineage_other_events to ledger_loader;
grant select (event_id) on raw.openlineage_other_events to ledger_loader;
grant select on raw.openlineage_other_events to ledger_transformer;

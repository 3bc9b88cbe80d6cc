-- One row per partition load, written in the load's own transaction. When the connection
-- is lost while COMMIT is in flight, the load is run again; finding its row then means
-- the first attempt committed, and its counts are the load's, where running the merge
-- again would report every row unchanged. The rows are also a history of the loads.
CREATE TABLE partition_loads (
    load_id           uuid PRIMARY KEY,
    account_id        text COLLATE "C" NOT NULL,
    metrics_date      date NOT NULL,
    run_id            text NOT NULL,
    inserted          integer NOT NULL CHECK (inserted >= 0),
    updated           integer NOT NULL CHECK (updated >= 0),
    deleted           integer NOT NULL CHECK (deleted >= 0),
    unchanged         integer NOT NULL CHECK (unchanged >= 0),
    campaigns_written integer NOT NULL CHECK (campaigns_written >= 0),
    loaded_at         timestamptz NOT NULL
);

CREATE INDEX partition_loads_by_partition ON partition_loads (account_id, metrics_date, loaded_at);

COMMENT ON TABLE partition_loads IS
    'Each committed load of an account-day: its run and the rows it inserted, updated, deleted and left unchanged.';

-- Ids compare byte for byte (COLLATE "C"): they are opaque, and the order and speed
-- of their indexes must not depend on the locale the server was created with.

CREATE TABLE campaigns (
    account_id       text COLLATE "C" NOT NULL,
    campaign_id      text COLLATE "C" NOT NULL,
    name             text NOT NULL,
    status           text NOT NULL,
    budget           numeric(18, 2) NOT NULL CHECK (budget >= 0),
    created_at       timestamptz NOT NULL,
    attributes_as_of date NOT NULL,
    loaded_at        timestamptz NOT NULL,
    loaded_by_run_id text NOT NULL,
    PRIMARY KEY (account_id, campaign_id)
);

COMMENT ON TABLE campaigns IS
    'Latest known attributes of each campaign of an account, from the most recent day loaded.';
COMMENT ON COLUMN campaigns.attributes_as_of IS
    'Day whose load wrote these attributes; a load of an earlier day never overwrites them.';

-- No foreign key to campaigns: only the partition merge writes these two tables, and it
-- writes a day's campaign rows before its metric rows in the same transaction. The
-- per-row check of a foreign key tripled the time of a bulk insert (500,000 rows:
-- 3.2 s without, 10.5 s with). Free space on each page (fillfactor) lets a restated
-- day's metrics be rewritten in place without touching the index (HOT updates).
CREATE TABLE campaign_daily_metrics (
    account_id       text COLLATE "C" NOT NULL,
    metrics_date     date NOT NULL,
    campaign_id      text COLLATE "C" NOT NULL,
    status           text NOT NULL,
    budget           numeric(18, 2) NOT NULL CHECK (budget >= 0),
    impressions      bigint NOT NULL CHECK (impressions >= 0),
    clicks           bigint NOT NULL CHECK (clicks >= 0),
    conversions      bigint NOT NULL CHECK (conversions >= 0),
    loaded_at        timestamptz NOT NULL,
    loaded_by_run_id text NOT NULL,
    PRIMARY KEY (account_id, metrics_date, campaign_id)
) WITH (fillfactor = 80);

COMMENT ON TABLE campaign_daily_metrics IS
    'What the platform reported for each campaign of an account on a day; status and budget as of that day.';

CREATE TABLE campaign_sync_progress (
    account_id   text COLLATE "C" NOT NULL,
    metrics_date date NOT NULL,
    campaign_id  text COLLATE "C" NOT NULL,
    synced_at    timestamptz NOT NULL,
    run_id       text NOT NULL,
    PRIMARY KEY (account_id, metrics_date, campaign_id)
);

COMMENT ON TABLE campaign_sync_progress IS
    'Campaigns of an account-day already synced on the platform, so that a retried run resumes.';

CREATE TABLE campaign_sync_failures (
    account_id   text COLLATE "C" NOT NULL,
    metrics_date date NOT NULL,
    campaign_id  text COLLATE "C" NOT NULL,
    reason       text NOT NULL,
    attempts     integer NOT NULL CHECK (attempts >= 0),
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    run_id       text NOT NULL,
    PRIMARY KEY (account_id, metrics_date, campaign_id)
);

COMMENT ON TABLE campaign_sync_failures IS
    'Campaigns of an account-day whose sync failed, with the last reason and the attempts so far.';

CREATE TABLE partition_progress (
    account_id        text COLLATE "C" NOT NULL,
    metrics_date      date NOT NULL,
    run_id            text NOT NULL,
    phase             text NOT NULL,
    pages_fetched     integer NOT NULL DEFAULT 0 CHECK (pages_fetched >= 0),
    campaigns_total   integer CHECK (campaigns_total >= 0),
    campaigns_synced  integer NOT NULL DEFAULT 0 CHECK (campaigns_synced >= 0),
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (account_id, metrics_date)
);

COMMENT ON TABLE partition_progress IS
    'Live progress of the latest run of each account-day, for the progress display.';

-- A restated day rewrites most of its metric rows. An update is HOT (no new index
-- entry, the new version on the same page) only when the page has room for it: at
-- fillfactor 80 a page had room for about a quarter of its rows, so a restatement of
-- 500,000 rows made 125,000 HOT updates and 375,000 updates that moved to another page
-- and added an index entry each (5.4 s). At 50 every row of a page can be rewritten in
-- place (3.6 s), for a heap about 1.6 times larger. Pages written before this
-- migration keep their fill until rewritten (VACUUM FULL or pg_repack).
ALTER TABLE campaign_daily_metrics SET (fillfactor = 50);

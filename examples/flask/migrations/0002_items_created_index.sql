-- The item list is read newest first.
CREATE INDEX items_created ON items (created);

-- Items with an optional uploaded file (stored under MEDIA_ROOT, the path kept here).
-- Written in the SQL both PostgreSQL and SQLite (local runs) accept: the app makes the ids.
CREATE TABLE items (
    id VARCHAR(32) PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    image VARCHAR(300),
    created TIMESTAMP WITH TIME ZONE NOT NULL
);

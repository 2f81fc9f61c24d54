-- Schema of the books_db database: the table every drill writes, backs up, restores and compares.
CREATE TABLE IF NOT EXISTS books (
    id          serial PRIMARY KEY,
    category_id int NOT NULL,
    title       varchar(255),
    author      varchar(255),
    isbn        varchar(20),
    year        int CHECK (year > 0),
    created_at  timestamptz DEFAULT current_timestamp
);

CREATE INDEX IF NOT EXISTS books_category_id_idx ON books (category_id);

#!/bin/sh
# Rebuilds v1.sqlite (abkit SQLite schema version 1 with sample data) from v1.sql.
set -eu
cd "$(dirname "$0")"
rm -f v1.sqlite
sqlite3 v1.sqlite < v1.sql

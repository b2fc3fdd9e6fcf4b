#!/bin/sh
# Rebuilds v2.sqlite (abkit SQLite schema version 2 with data written by the v2 code) from v2.sql.
set -eu
cd "$(dirname "$0")"
rm -f v2.sqlite
sqlite3 v2.sqlite < v2.sql

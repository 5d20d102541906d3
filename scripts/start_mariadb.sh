#!/usr/bin/env bash
# Install (Debian packages), start (no systemd: the init script runs mariadbd directly) and prepare
# a MariaDB server for the database tests; prints the export line for STUDY_TEST_MARIADB_URL.
# The password is drawn at each run and never written to the repository.
#   eval "$(scripts/start_mariadb.sh)"
set -euo pipefail
sudo_=""
[ "$(id -u)" = 0 ] || sudo_="sudo"
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  echo "==> installing mariadb-server (Debian)" >&2
  log="$(mktemp)"
  if ! { $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq mariadb-server; } >"$log" 2>&1; then
    tail -20 "$log" >&2; echo "error: could not install mariadb-server" >&2; exit 1
  fi
fi
if ! $sudo_ mariadb-admin ping --silent >/dev/null 2>&1; then
  echo "==> starting MariaDB" >&2
  $sudo_ service mariadb start >&2
  for _ in $(seq 1 30); do $sudo_ mariadb-admin ping --silent >/dev/null 2>&1 && break; sleep 0.5; done
fi
password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
$sudo_ mariadb <<SQL
CREATE DATABASE IF NOT EXISTS study_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE IF NOT EXISTS study_test_analytic CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'study'@'localhost' IDENTIFIED BY '$password';
ALTER USER 'study'@'localhost' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS 'study'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER 'study'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON study_test.* TO 'study'@'localhost', 'study'@'127.0.0.1';
GRANT ALL PRIVILEGES ON study_test_analytic.* TO 'study'@'localhost', 'study'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
echo "==> MariaDB $($sudo_ mariadb -N -e 'SELECT VERSION()') ready: database study_test for user study" >&2
echo "export STUDY_TEST_MARIADB_URL='mysql+pymysql://study:${password}@127.0.0.1:3306/study_test?charset=utf8mb4'"

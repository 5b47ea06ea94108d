#!/bin/sh
# run-demo.sh BIN DATA - what `make run` does after building: create a demo
# data directory once (synthetic people only), then show what it holds and
# how to use it.
set -eu
bin=$1
data=$2

if [ ! -f "$data/keyring" ]; then
    echo "== creating demo data in '$data' (synthetic: département 099, e-mails in .invalid)"
    "$bin" init --data "$data" --academie 10 --academie 02
    "$bin" demo-data --data "$data" --establishments 3 --students-per 120 --seed 42
else
    echo "== using the existing demo data in '$data' (delete the directory to start over)"
fi

echo
echo "== establishments"
"$bin" establishment list --data "$data"
echo
echo "== a student, found by INE through the blind index"
"$bin" student find --data "$data" --ine 0999000001S
echo
echo "== keys: compartments, data-key versions, rows per version"
"$bin" keys list --data "$data"
cat <<EOT

Try:
  $bin --help
  $bin student find --data $data --ine 0999000002T
  $bin keys rotate  --data $data --compartment 10
  $bin keys export  --data $data --compartment 10 --out /tmp/keyring-10

The HTTP server, accounts and sign-in ('coffre serve' on 127.0.0.1) are the
next milestone (issue 3); this build is the sealed records store and its CLI.
EOT

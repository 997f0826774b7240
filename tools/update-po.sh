#!/usr/bin/env bash
# Extract every translatable message of bessai_edge/ and merge it into the Spanish
# catalog. New messages arrive untranslated (msgstr ""), changed ones are marked fuzzy:
# translate them in bessai_edge/locale/es/LC_MESSAGES/bessai.po, then run `make`,
# which compiles the .mo with msgfmt --check.
#
# With --check nothing is written: it fails when a message of the source is missing
# from the catalog or any entry is untranslated or fuzzy.
set -euo pipefail
cd "$(dirname "$0")/.."
po=bessai_edge/locale/es/LC_MESSAGES/bessai.po
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cli.py translates each command's HELP with _(module.HELP), which xgettext cannot
# see, so the HELP strings are extracted from a generated file of _() calls.
grep -h '^HELP = ' bessai_edge/commands/*.py | sed 's/^HELP = \(.*\)$/_(\1)/' > "$work/command_help.py"
# argparse's own messages (usage, errors) come from a committed list, because argparse
# translates them through the global gettext domain that bessai_edge.i18n sets to ours.
{ find bessai_edge -name '*.py' | sort; echo tools/argparse_msgids.py; echo "$work/command_help.py"; } > "$work/files"
xgettext --language=Python --keyword=_ --keyword=ngettext:1,2 --from-code=UTF-8 \
  --package-name=bessai-edge --msgid-bugs-address=none --no-wrap \
  --files-from="$work/files" --output="$work/bessai.pot"
sed -i "s|$work/|generated:|" "$work/bessai.pot"

if [[ "${1:-}" == "--check" ]]; then
  msgcmp --use-untranslated "$po" "$work/bessai.pot"
  statistics=$(LC_ALL=C msgfmt --check --statistics --output-file=/dev/null "$po" 2>&1)
  echo "$statistics"
  [[ "$statistics" != *untranslated* && "$statistics" != *fuzzy* ]]
  exit
fi

if [[ -f "$po" ]]; then
  msgmerge --quiet --update --backup=none --no-wrap "$po" "$work/bessai.pot"
else
  msginit --no-translator --no-wrap --locale=es --input="$work/bessai.pot" --output-file="$po"
fi
msgfmt --check --statistics --output-file=/dev/null "$po"

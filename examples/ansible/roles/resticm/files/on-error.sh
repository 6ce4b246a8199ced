#!/bin/sh
# on_error: record what failed (ERROR lists every failed step) next to the config.
printf '%s %s\n' "$(date -u +%FT%TZ)" "$ERROR" >> "$(dirname "$RESTICM_CONFIG")/last-error.log"

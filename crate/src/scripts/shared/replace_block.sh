# replace_block FILE BEGIN END CONTENT top|bottom
replace_block() {
  local file=$1 begin=$2 end=$3 content=$4 where=$5 target tmp order
  target=$file
  if [ -L "$file" ]; then target=$(readlink -f -- "$file"); fi
  [ -e "$target" ] || : > "$target"
  order=$(awk -v b="$begin" -v e="$end" '$0 == b { s = s "B" } $0 == e { s = s "E" } END { print s }' "$target")
  if [ -n "$order" ] && [ "$order" != BE ]; then
    say "the AI Studio SSH block in $file is damaged (its marker lines are repeated or out of order); fix it by hand, nothing was changed"
    return 1
  fi
  tmp=$(mktemp "$target.XXXXXX")
  {
    if [ "$where" = top ]; then printf '%s\n%s\n%s\n' "$begin" "$content" "$end"; fi
    awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$target"
    if [ "$where" = bottom ]; then printf '%s\n%s\n%s\n' "$begin" "$content" "$end"; fi
  } > "$tmp"
  chmod --reference="$target" "$tmp" 2>/dev/null || true
  chown --reference="$target" "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$target"
}

{#-
    Engine-portable SQL (issue #17). Every construct whose spelling differs
    between DuckDB and Spark SQL goes through one of these macros; the
    `default__` form is DuckDB's (the project's first engine), `spark__` is
    Apache Spark 4's. Models call the short name, never an engine's spelling.
    Same meaning on both engines, checked by tests/test_spark_engine.py.
-#}

{#- `name as not materialized (`: DuckDB would copy a CTE read twice; Spark never materializes CTEs. -#}
{% macro cte_not_materialized() -%}{{ return(adapter.dispatch('cte_not_materialized')()) }}{%- endmacro %}
{% macro default__cte_not_materialized() -%}as not materialized{%- endmacro %}
{% macro spark__cte_not_materialized() -%}as{%- endmacro %}

{#- Types. -#}
{% macro type_text() -%}{{ return(adapter.dispatch('type_text')()) }}{%- endmacro %}
{% macro default__type_text() -%}varchar{%- endmacro %}
{% macro spark__type_text() -%}string{%- endmacro %}

{% macro type_timestamptz() -%}{{ return(adapter.dispatch('type_timestamptz')()) }}{%- endmacro %}
{% macro default__type_timestamptz() -%}timestamptz{%- endmacro %}
{#- Spark's TIMESTAMP is an instant (UTC-adjusted), as timestamptz; the session time zone is UTC. -#}
{% macro spark__type_timestamptz() -%}timestamp{%- endmacro %}

{#- Floating-point classes; null in, null out (DuckDB's isfinite/isnan/isinf). -#}
{% macro is_finite(x) -%}{{ return(adapter.dispatch('is_finite')(x)) }}{%- endmacro %}
{% macro default__is_finite(x) -%}isfinite({{ x }}){%- endmacro %}
{% macro spark__is_finite(x) -%}
    (case when {{ x }} is null then null else not (isnan({{ x }}) or abs({{ x }}) = double('infinity')) end)
{%- endmacro %}

{% macro is_nan(x) -%}{{ return(adapter.dispatch('is_nan')(x)) }}{%- endmacro %}
{% macro default__is_nan(x) -%}isnan({{ x }}){%- endmacro %}
{% macro spark__is_nan(x) -%}(case when {{ x }} is null then null else isnan({{ x }}) end){%- endmacro %}

{% macro is_inf(x) -%}{{ return(adapter.dispatch('is_inf')(x)) }}{%- endmacro %}
{% macro default__is_inf(x) -%}isinf({{ x }}){%- endmacro %}
{% macro spark__is_inf(x) -%}(abs({{ x }}) = double('infinity')){%- endmacro %}

{#- Regular expressions (partial match, like DuckDB's regexp_matches; Spark uses Java's syntax). -#}
{% macro regex_matches(x, pattern) -%}{{ return(adapter.dispatch('regex_matches')(x, pattern)) }}{%- endmacro %}
{% macro default__regex_matches(x, pattern) -%}regexp_matches({{ x }}, {{ pattern }}){%- endmacro %}
{% macro spark__regex_matches(x, pattern) -%}({{ x }} rlike {{ pattern }}){%- endmacro %}

{% macro text_starts_with(x, prefix) -%}{{ return(adapter.dispatch('text_starts_with')(x, prefix)) }}{%- endmacro %}
{% macro default__text_starts_with(x, prefix) -%}starts_with({{ x }}, {{ prefix }}){%- endmacro %}
{% macro spark__text_starts_with(x, prefix) -%}startswith({{ x }}, {{ prefix }}){%- endmacro %}

{#- `x GLOB pattern` (`*`, `?`): Spark has none, so the pattern becomes an anchored regex. -#}
{% macro glob_matches(x, pattern) -%}{{ return(adapter.dispatch('glob_matches')(x, pattern)) }}{%- endmacro %}
{% macro default__glob_matches(x, pattern) -%}({{ x }} glob {{ pattern }}){%- endmacro %}
{% macro spark__glob_matches(x, pattern) -%}
    ({{ x }} rlike concat('^', replace(replace(regexp_replace({{ pattern }}, '([.+(){}^$|\\])', '\\$1'), '*', '.*'), '?', '.'), '$'))
{%- endmacro %}

{#- Exact quantile with linear interpolation (DuckDB quantile_cont = Spark percentile; never percentile_approx).
    `q` is one fraction or a list of them (then a list comes back). -#}
{% macro quantile_exact(x, q) -%}{{ return(adapter.dispatch('quantile_exact')(x, q)) }}{%- endmacro %}
{% macro default__quantile_exact(x, q) -%}
    quantile_cont({{ x }}, {% if q is sequence and q is not string %}[{{ q | join(', ') }}]{% else %}{{ q }}{% endif %})
{%- endmacro %}
{% macro spark__quantile_exact(x, q) -%}
    percentile({{ x }}, {% if q is sequence and q is not string %}array({{ q | join(', ') }}){% else %}{{ q }}{% endif %})
{%- endmacro %}

{#- The value of `x` at the row with the largest / smallest `by` (DuckDB arg_max/arg_min, Spark max_by/min_by). -#}
{% macro value_at_max(x, by) -%}{{ return(adapter.dispatch('value_at_max')(x, by)) }}{%- endmacro %}
{% macro default__value_at_max(x, by) -%}arg_max({{ x }}, {{ by }}){%- endmacro %}
{% macro spark__value_at_max(x, by) -%}max_by({{ x }}, {{ by }}){%- endmacro %}

{% macro value_at_min(x, by) -%}{{ return(adapter.dispatch('value_at_min')(x, by)) }}{%- endmacro %}
{% macro default__value_at_min(x, by) -%}arg_min({{ x }}, {{ by }}){%- endmacro %}
{% macro spark__value_at_min(x, by) -%}min_by({{ x }}, {{ by }}){%- endmacro %}

{#- A row value that orders by its fields in turn (arg_max's tie breakers). -#}
{% macro row_value(fields) -%}{{ return(adapter.dispatch('row_value')(fields)) }}{%- endmacro %}
{% macro default__row_value(fields) -%}({{ fields | join(', ') }}){%- endmacro %}
{% macro spark__row_value(fields) -%}struct({{ fields | join(', ') }}){%- endmacro %}

{#- Lists. `list_at` is 1-based on both engines. -#}
{% macro list_at(list, index) -%}{{ return(adapter.dispatch('list_at')(list, index)) }}{%- endmacro %}
{% macro default__list_at(list, index) -%}({{ list }})[{{ index }}]{%- endmacro %}
{% macro spark__list_at(list, index) -%}try_element_at({{ list }}, {{ index }}){%- endmacro %}

{% macro list_len(list) -%}{{ return(adapter.dispatch('list_len')(list)) }}{%- endmacro %}
{% macro default__list_len(list) -%}len({{ list }}){%- endmacro %}
{% macro spark__list_len(list) -%}size({{ list }}){%- endmacro %}

{% macro list_literal(items) -%}{{ return(adapter.dispatch('list_literal')(items)) }}{%- endmacro %}
{% macro default__list_literal(items) -%}[{{ items | join(', ') }}]{%- endmacro %}
{% macro spark__list_literal(items) -%}array({{ items | join(', ') }}){%- endmacro %}

{#- An empty list of text (a typed empty list, so coalesce() keeps the column's type). -#}
{% macro empty_text_list() -%}{{ return(adapter.dispatch('empty_text_list')()) }}{%- endmacro %}
{% macro default__empty_text_list() -%}[]::varchar[]{%- endmacro %}
{% macro spark__empty_text_list() -%}cast(array() as array<string>){%- endmacro %}

{#- Text aggregated in order: string_agg(x, sep order by key), and the distinct variant sorted by x. -#}
{% macro string_agg_ordered(x, sep, order_by, where=none) -%}{{ return(adapter.dispatch('string_agg_ordered')(x, sep, order_by, where)) }}{%- endmacro %}
{% macro default__string_agg_ordered(x, sep, order_by, where=none) -%}
    string_agg({{ x }}, {{ sep }} order by {{ order_by }}){% if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}
{% macro spark__string_agg_ordered(x, sep, order_by, where=none) -%}
    nullif(array_join(transform(array_sort(collect_list(
        {%- if where %}case when {{ where }} then {% endif %}struct({{ order_by }} as k, {{ x }} as v){% if where %} end{% endif -%}
    )), e -> e.v), {{ sep }}), '')
{%- endmacro %}

{% macro string_agg_distinct_sorted(x, sep) -%}{{ return(adapter.dispatch('string_agg_distinct_sorted')(x, sep)) }}{%- endmacro %}
{% macro default__string_agg_distinct_sorted(x, sep) -%}string_agg(distinct {{ x }}, {{ sep }} order by {{ x }}){%- endmacro %}
{% macro spark__string_agg_distinct_sorted(x, sep) -%}nullif(array_join(array_sort(collect_set({{ x }})), {{ sep }}), ''){%- endmacro %}

{#- The last non-null value of `x` in the window frame. -#}
{% macro last_value_ignore_nulls(x) -%}{{ return(adapter.dispatch('last_value_ignore_nulls')(x)) }}{%- endmacro %}
{% macro default__last_value_ignore_nulls(x) -%}last_value({{ x }} ignore nulls){%- endmacro %}
{% macro spark__last_value_ignore_nulls(x) -%}last_value({{ x }}, true){%- endmacro %}

{#- Text formatting with `{}` placeholders: DuckDB format() (fmt), Spark format_string() (printf).
    Only `{}` and `{:+.0f}` / `{:.Nf}` are used and translated. -#}
{% macro format_text(template, args) -%}
    {{ format_head(template) }} {{ args | join(', ') }})
{%- endmacro %}

{#- Seconds since the epoch, as a double with microseconds. -#}
{% macro epoch_seconds(ts) -%}{{ return(adapter.dispatch('epoch_seconds')(ts)) }}{%- endmacro %}
{% macro default__epoch_seconds(ts) -%}epoch({{ ts }}){%- endmacro %}
{% macro spark__epoch_seconds(ts) -%}(unix_micros({{ ts }}) / 1000000.0d){%- endmacro %}

{#- An instant as ISO text in UTC, e.g. 2024-05-01T13:00:00Z. -#}
{% macro iso_utc_text(ts) -%}{{ return(adapter.dispatch('iso_utc_text')(ts)) }}{%- endmacro %}
{% macro default__iso_utc_text(ts) -%}strftime({{ ts }} at time zone 'UTC', '%Y-%m-%dT%H:%M:%SZ'){%- endmacro %}
{% macro spark__iso_utc_text(ts) -%}date_format({{ ts }}, "yyyy-MM-dd'T'HH:mm:ss'Z'"){%- endmacro %}

{#- A 64-bit hash of the values (grain tests, dedupe). Not stable across engines: never stored. -#}
{% macro hash64(columns) -%}{{ return(adapter.dispatch('hash64')(columns)) }}{%- endmacro %}
{% macro default__hash64(columns) -%}hash({{ columns | join(', ') }}){%- endmacro %}
{% macro spark__hash64(columns) -%}xxhash64({{ columns | join(', ') }}){%- endmacro %}

{#- A deterministic non-negative integer from text, the SAME on every engine (stored results
    depend on it, e.g. the bootstrap draws): the first 60 bits of the text's md5. -#}
{% macro stable_hash(text) -%}{{ return(adapter.dispatch('stable_hash')(text)) }}{%- endmacro %}
{% macro default__stable_hash(text) -%}cast(('0x' || substr(md5({{ text }}), 1, 15)) as bigint){%- endmacro %}
{% macro spark__stable_hash(text) -%}cast(conv(substr(md5({{ text }}), 1, 15), 16, 10) as bigint){%- endmacro %}

{#- Does the JSON text hold an object / an array (false for invalid JSON and null)? -#}
{% macro json_is_object(x) -%}{{ return(adapter.dispatch('json_is_object')(x)) }}{%- endmacro %}
{#- CASE, not AND: DuckDB would evaluate json_type() on invalid JSON too, and fail -#}
{% macro default__json_is_object(x) -%}(case when json_valid({{ x }}) then json_type({{ x }}) = 'OBJECT' else false end){%- endmacro %}
{% macro spark__json_is_object(x) -%}coalesce(json_object_keys({{ x }}) is not null, false){%- endmacro %}

{% macro json_is_array(x) -%}{{ return(adapter.dispatch('json_is_array')(x)) }}{%- endmacro %}
{% macro default__json_is_array(x) -%}(case when json_valid({{ x }}) then json_type({{ x }}) = 'ARRAY' else false end){%- endmacro %}
{% macro spark__json_is_array(x) -%}coalesce(json_array_length({{ x }}) is not null, false){%- endmacro %}

{#- A JSON path as the engine writes it: `$."a.b"` (DuckDB) / `$['a.b']` (Spark). `path` is our
    form (events_field_path): `$."name"` for one member, or a user's `$...` path used as is. -#}
{% macro json_path(path) -%}{{ return(adapter.dispatch('json_path')(path)) }}{%- endmacro %}
{% macro default__json_path(path) -%}{{ return(path) }}{%- endmacro %}
{% macro spark__json_path(path) -%}
    {%- if path.startswith('$."') and path.endswith('"') -%}
        {%- set member = path[3:-1] | replace('\\"', '"') | replace('\\\\', '\\') -%}
        {{- return("$['" ~ member ~ "']") -}}
    {%- else -%}
        {{- return(path) -}}
    {%- endif -%}
{%- endmacro %}

{#- The text of the JSON value at `path` (strings unquoted, anything else as JSON). -#}
{% macro json_text(x, path) -%}{{ return(adapter.dispatch('json_text')(x, path)) }}{%- endmacro %}
{% macro default__json_text(x, path) -%}json_extract_string({{ x }}, {{ sql_string_literal(path) }}){%- endmacro %}
{% macro spark__json_text(x, path) -%}get_json_object({{ x }}, {{ sql_string_literal(json_path(path)) }}){%- endmacro %}


{#- FROM item: `relation` with one row per element of its JSON array column (`alias`.result, the
    element as JSON text; json_array_entry_seat(alias) its 1-based position). Rows whose column is
    no array give none. -#}
{% macro json_array_entries(relation, json_column, alias) -%}
    {{- return(adapter.dispatch('json_array_entries')(relation, json_column, alias)) -}}
{%- endmacro %}
{% macro default__json_array_entries(relation, json_column, alias) -%}
    {{ relation }},
        lateral (
            select
                generate_subscripts(json_extract({{ json_column }}, '$[*]'), 1) as seat,
                unnest(json_extract({{ json_column }}, '$[*]')) as result
        ) as {{ alias }}
{%- endmacro %}
{#- from_json to array<string> keeps each element's JSON text (objects, numbers; strings unquoted). -#}
{% macro spark__json_array_entries(relation, json_column, alias) -%}
    {{ relation }}
        lateral view posexplode(from_json({{ json_column }}, 'array<string>')) {{ alias }} as seat, result
{%- endmacro %}

{% macro json_array_entry_seat(alias) -%}{{ return(adapter.dispatch('json_array_entry_seat')(alias)) }}{%- endmacro %}
{% macro default__json_array_entry_seat(alias) -%}{{ alias }}.seat{%- endmacro %}
{% macro spark__json_array_entry_seat(alias) -%}({{ alias }}.seat + 1){%- endmacro %}

{#- A list of structs as rows, one column per struct field (select list item). -#}
{% macro unnest_struct_list(column) -%}{{ return(adapter.dispatch('unnest_struct_list')(column)) }}{%- endmacro %}
{% macro default__unnest_struct_list(column) -%}unnest({{ column }}, recursive := true){%- endmacro %}
{% macro spark__unnest_struct_list(column) -%}inline({{ column }}){%- endmacro %}

{#- FROM item: `relation` with one row per member of its JSON object column: `alias`.key,
    `alias`.value (the member's JSON text) and `alias`.type (DuckDB's json type names; Spark
    tells OBJECT and VARCHAR apart, which is what the models ask). -#}
{% macro json_object_entries(relation, json_column, alias) -%}
    {{- return(adapter.dispatch('json_object_entries')(relation, json_column, alias)) -}}
{%- endmacro %}
{% macro default__json_object_entries(relation, json_column, alias) -%}
    {{ relation }},
        json_each({{ json_column }}) as {{ alias }}
{%- endmacro %}
{#- Spark: the member's type from its VARIANT; its text as written (from_json to strings keeps a
    number's or an object's own text), re-quoted for strings. -#}
{% macro spark__json_object_entries(relation, json_column, alias) -%}
    (
        select
            {{ relation }}.*,
            {{ alias }}_exploded.key as {{ alias }}_key,
            {{ alias }}_exploded.member as {{ alias }}_member
        from {{ relation }}
            lateral view explode(
                try_variant_get(try_parse_json({{ json_column }}), '$', 'map<string, variant>')
            ) {{ alias }}_exploded as key, member
    ) as {{ relation }},
    lateral (
        select
            {{ alias }}_key as key,
            case
                when schema_of_variant({{ alias }}_member) = 'STRING' then to_json({{ alias }}_member)
                else from_json({{ json_column }}, 'map<string, string>')[{{ alias }}_key]
            end as value,
            case
                when schema_of_variant({{ alias }}_member) like 'OBJECT%' then 'OBJECT'
                when schema_of_variant({{ alias }}_member) = 'STRING' then 'VARCHAR'
                when schema_of_variant({{ alias }}_member) like 'ARRAY%' then 'ARRAY'
                when schema_of_variant({{ alias }}_member) = 'VOID' then 'NULL'
                else upper(schema_of_variant({{ alias }}_member))
            end as type
    ) as {{ alias }}
{%- endmacro %}

{#- Aggregates into lists: in `order_by` order (nulls kept), or distinct and sorted (nulls
    dropped; `where` filters the rows). Null for no rows, as DuckDB's list(). -#}
{% macro list_agg_ordered(x, order_by) -%}{{ return(adapter.dispatch('list_agg_ordered')(x, order_by)) }}{%- endmacro %}
{% macro default__list_agg_ordered(x, order_by) -%}list({{ x }} order by {{ order_by }}){%- endmacro %}
{% macro spark__list_agg_ordered(x, order_by) -%}
    transform(array_sort(collect_list(struct({{ order_by }} as k, {{ x }} as v))), e -> e.v)
{%- endmacro %}

{% macro list_agg_distinct_sorted(x, where=none) -%}{{ return(adapter.dispatch('list_agg_distinct_sorted')(x, where)) }}{%- endmacro %}
{% macro default__list_agg_distinct_sorted(x, where=none) -%}
    list(distinct {{ x }} order by {{ x }}){% if where %} filter (where {{ where }}){% endif %}
{%- endmacro %}
{% macro spark__list_agg_distinct_sorted(x, where=none) -%}
    nullif(array_sort(collect_set({% if where %}case when {{ where }} then {{ x }} end{% else %}{{ x }}{% endif %})), array())
{%- endmacro %}

{#- The head of a formatting call, `format('template',` (DuckDB, fmt's `{}` placeholders) or
    `format_string('template',` (Spark, printf's): the model writes the arguments and `)`
    after it, so they may hold any SQL and Jinja. Placeholders used: {}, {:.Nf}, {:+.Nf}. -#}
{% macro format_head(template) -%}{{ return(adapter.dispatch('format_head')(template)) }}{%- endmacro %}
{% macro default__format_head(template) -%}format({{ wb_text_literal(template) }},{%- endmacro %}
{% macro spark__format_head(template) -%}
    {%- set t = template | replace('%', '%%')
        | replace('{:.0f}', '%.0f') | replace('{:.1f}', '%.1f') | replace('{:.2f}', '%.2f') | replace('{:.3f}', '%.3f')
        | replace('{:+.0f}', '%+.0f') | replace('{:+.1f}', '%+.1f') | replace('{:+.2f}', '%+.2f') | replace('{:+.3f}', '%+.3f')
        | replace('{}', '%s') -%}
    {#- a quote inside: Spark's raw literals (escapedStringLiterals) cannot double it; use "..." -#}
    format_string({{ ('"' ~ t ~ '"') if "'" in t else ("'" ~ t ~ "'") }},
{%- endmacro %}

{% macro list_join(list, sep) -%}{{ return(adapter.dispatch('list_join')(list, sep)) }}{%- endmacro %}
{% macro default__list_join(list, sep) -%}array_to_string({{ list }}, {{ sep }}){%- endmacro %}
{% macro spark__list_join(list, sep) -%}array_join({{ list }}, {{ sep }}){%- endmacro %}

{#- round(x, places) with places computed per row (Spark's round() wants a constant): the
    same arithmetic as DuckDB's, round half away from zero of x·10^p, divided back. -#}
{% macro round_to_places(x, places) -%}{{ return(adapter.dispatch('round_to_places')(x, places)) }}{%- endmacro %}
{% macro default__round_to_places(x, places) -%}round({{ x }}, {{ places }}){%- endmacro %}
{% macro spark__round_to_places(x, places) -%}
    (case
        when {{ places }} >= 0 then round({{ x }} * power(10, {{ places }})) / power(10, {{ places }})
        else round({{ x }} / power(10, -({{ places }}))) * power(10, -({{ places }}))
    end)
{%- endmacro %}

{#- A JSON object's text without the given top-level keys (the sweep cell's config without its
    seed keys). DuckDB keeps the members' order; Spark's VARIANT sorts them by key. -#}
{% macro json_without_keys(x, keys) -%}{{ return(adapter.dispatch('json_without_keys')(x, keys)) }}{%- endmacro %}
{% macro default__json_without_keys(x, keys) -%}
    cast(json_merge_patch(
        {{ x }},
        '{ {%- for k in keys %}{{ tojson(k) }}: null{{ ', ' if not loop.last }}{% endfor -%} }'
    ) as varchar)
{%- endmacro %}
{% macro spark__json_without_keys(x, keys) -%}
    to_json(map_filter(
        try_variant_get(try_parse_json({{ x }}), '$', 'map<string, variant>'),
        (k, v) -> not array_contains(array({% for k in keys %}{{ wb_text_literal(k) }}{{ ', ' if not loop.last }}{% endfor %}), k)
    ))
{%- endmacro %}

{#- Select-list item: one row per integer 0 .. n-1 (n >= 1). -#}
{% macro unnest_range(n) -%}{{ return(adapter.dispatch('unnest_range')(n)) }}{%- endmacro %}
{% macro default__unnest_range(n) -%}unnest(range({{ n }})){%- endmacro %}
{% macro spark__unnest_range(n) -%}explode(sequence(0, {{ n }} - 1)){%- endmacro %}

{#- FROM item: the integers 0 .. n-1 as `alias`(`column`). -#}
{% macro integers_table(n, alias, column) -%}{{ return(adapter.dispatch('integers_table')(n, alias, column)) }}{%- endmacro %}
{% macro default__integers_table(n, alias, column) -%}range({{ n }}) as {{ alias }}({{ column }}){%- endmacro %}
{% macro spark__integers_table(n, alias, column) -%}(select id as {{ column }} from range({{ n }})) as {{ alias }}{%- endmacro %}

{#- Join clause: the row of `relation` (as `alias`) with the largest `key` not above `value`, or
    none (DuckDB's ASOF LEFT JOIN; on Spark a lateral max() then an equi-join). -#}
{% macro asof_left_join_le(value, relation, alias, key) -%}
    {{- return(adapter.dispatch('asof_left_join_le')(value, relation, alias, key)) -}}
{%- endmacro %}
{% macro default__asof_left_join_le(value, relation, alias, key) -%}
    asof left join {{ relation }} as {{ alias }}
            on {{ value }} >= {{ alias }}.{{ key }}
{%- endmacro %}
{% macro spark__asof_left_join_le(value, relation, alias, key) -%}
    left join lateral (
            select max(asof_candidates.{{ key }}) as asof_key
            from {{ relation }} as asof_candidates
            where asof_candidates.{{ key }} <= {{ value }}
        ) as {{ alias }}_asof
        left join {{ relation }} as {{ alias }}
            on {{ alias }}.{{ key }} = {{ alias }}_asof.asof_key
{%- endmacro %}

{#- One number through a C printf format (`%.6g`, `%.0f`), null for null. Spark's printf is
    Java's, whose %g keeps trailing zeros ("0.500000", "1.00000e-05"): they are stripped as C does. -#}
{% macro printf_number(fmt, x) -%}{{ return(adapter.dispatch('printf_number')(fmt, x)) }}{%- endmacro %}
{% macro default__printf_number(fmt, x) -%}printf('{{ fmt }}', {{ x }}){%- endmacro %}
{#- Java rounds the shortest decimal of a double half up, C the exact binary value: the value is
    first rounded to the printed digits in double arithmetic (as DuckDB's round()), so a
    decimal tie (0.05192185 -> 0.0519218) comes out as C prints it. -#}
{% macro spark__printf_number(fmt, x) -%}
    {%- set digits = fmt[2:-1] | int -%}
    {%- if fmt.endswith('g') -%}
    {%- set places = 'cast(' ~ (digits - 1) ~ ' - floor(log10(abs(' ~ x ~ '))) as integer)' -%}
    (case
        when {{ x }} is null then null
        when {{ x }} = 0 or not {{ is_finite(x) }} then regexp_replace(regexp_replace(format_string('{{ fmt }}', {{ x }}), '(\.[0-9]*?)0+($|e)', '$1$2'), '\.($|e)', '$1')
        else regexp_replace(regexp_replace(format_string('{{ fmt }}', {{ round_to_places(x, places) }}), '(\.[0-9]*?)0+($|e)', '$1$2'), '\.($|e)', '$1')
    end)
    {%- else -%}
    (case when {{ x }} is not null then format_string('{{ fmt }}', {{ round_to_places(x, digits) }}) end)
    {%- endif -%}
{%- endmacro %}

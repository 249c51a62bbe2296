"""Every expectation type the polars engine compiles, and the function that compiles it.

Adding a type means writing its compiler (row.py, batch.py, types.py, or sluice_rules.py for
sluice's own types declared in expectations/sluice_types.py) and one line here; the
contract and differential tests are parametrized over this table.
"""

from __future__ import annotations

from collections.abc import Callable

from expectations.polars_engine import batch, row, sluice_rules, types
from expectations.polars_engine.plan import Ctx, Plan

COMPILERS: dict[str, Callable[[Ctx], Plan]] = {
    "expect_column_values_to_not_be_null": row.not_be_null,
    "expect_column_values_to_be_null": row.be_null,
    "expect_column_values_to_be_in_set": row.be_in_set,
    "expect_column_values_to_not_be_in_set": row.not_be_in_set,
    "expect_column_values_to_be_between": row.be_between,
    "expect_column_values_to_match_regex": row.match_regex,
    "expect_column_values_to_not_match_regex": row.not_match_regex,
    "expect_column_values_to_match_regex_list": row.match_regex_list,
    "expect_column_values_to_not_match_regex_list": row.not_match_regex_list,
    "expect_column_values_to_match_like_pattern": row.match_like_pattern,
    "expect_column_values_to_not_match_like_pattern": row.not_match_like_pattern,
    "expect_column_values_to_match_like_pattern_list": row.match_like_pattern_list,
    "expect_column_values_to_not_match_like_pattern_list": row.not_match_like_pattern_list,
    "expect_column_values_to_match_strftime_format": row.match_strftime_format,
    "expect_column_values_to_be_dateutil_parseable": row.be_dateutil_parseable,
    "expect_column_values_to_be_json_parseable": row.be_json_parseable,
    "expect_column_values_to_be_unique": row.be_unique,
    "expect_column_values_to_be_of_type": types.be_of_type,
    "expect_column_values_to_be_in_type_list": types.be_in_type_list,
    "expect_column_values_to_be_increasing": row.be_increasing,
    "expect_column_values_to_be_decreasing": row.be_decreasing,
    "expect_column_value_lengths_to_be_between": row.value_lengths_between,
    "expect_column_value_lengths_to_equal": row.value_lengths_equal,
    "expect_column_value_z_scores_to_be_less_than": row.z_scores_less_than,
    "expect_column_pair_values_a_to_be_greater_than_b": row.pair_a_greater_than_b,
    "expect_column_pair_values_to_be_equal": row.pair_equal,
    "expect_column_pair_values_to_be_in_set": row.pair_in_set,
    "expect_compound_columns_to_be_unique": row.compound_columns_unique,
    "expect_select_column_values_to_be_unique_within_record": row.unique_within_record,
    "expect_multicolumn_sum_to_equal": row.multicolumn_sum_equal,
    "expect_table_row_count_to_be_between": batch.row_count_between,
    "expect_table_row_count_to_equal": batch.row_count_equal,
    "expect_table_column_count_to_be_between": batch.column_count_between,
    "expect_table_column_count_to_equal": batch.column_count_equal,
    "expect_table_columns_to_match_set": batch.columns_match_set,
    "expect_table_columns_to_match_ordered_list": batch.columns_match_ordered_list,
    "expect_column_to_exist": batch.column_to_exist,
    "expect_column_min_to_be_between": batch.column_min,
    "expect_column_max_to_be_between": batch.column_max,
    "expect_column_mean_to_be_between": batch.column_mean,
    "expect_column_median_to_be_between": batch.column_median,
    "expect_column_stdev_to_be_between": batch.column_stdev,
    "expect_column_sum_to_be_between": batch.column_sum,
    "expect_column_quantile_values_to_be_between": batch.quantile_values,
    "expect_column_unique_value_count_to_be_between": batch.unique_value_count,
    "expect_column_proportion_of_unique_values_to_be_between": batch.proportion_unique,
    "expect_column_distinct_values_to_be_in_set": batch.distinct_in_set,
    "expect_column_distinct_values_to_contain_set": batch.distinct_contain_set,
    "expect_column_distinct_values_to_equal_set": batch.distinct_equal_set,
    "expect_column_most_common_value_to_be_in_set": batch.most_common_value,
    "sluice.expect_column_values_to_follow_majority_by": sluice_rules.follow_majority_by,
    "sluice.expect_column_values_to_not_be_rare_variants": sluice_rules.not_be_rare_variants,
    "sluice.expect_compound_columns_to_be_unique_after_normalising": (
        sluice_rules.unique_after_normalising
    ),
    "sluice.expect_rows_to_not_be_near_duplicates": sluice_rules.near_duplicates,
}

SUPPORTED_TYPES: tuple[str, ...] = tuple(sorted(COMPILERS))

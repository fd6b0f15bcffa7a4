"""The decoder test's conv state check: a hybrid whose cache holds recurrent states only is exempted."""

from __future__ import annotations

import pytest

from tools.source.python_edit import EditError
from tools.targets.optimum_intel.test_edits_states import exempt_conv_state_check

CHECKS = '''class T:
    def test_compare(self, model_arch):
        if is_stateful:
            self.assertTrue(len(ov_outputs.cache_params.conv_states) > 0)
            if model_arch not in ["lfm2", "lfm2_moe"]:
                self.assertTrue(len(ov_outputs.cache_params.ssm_states) > 0)
'''


def test_the_bare_check_is_wrapped_then_joined_and_the_ssm_exemption_is_left_alone():
    once = exempt_conv_state_check(CHECKS, "minimax")
    assert once.changed
    assert ('            if model_arch not in ["minimax"]:\n'
            '                self.assertTrue(len(ov_outputs.cache_params.conv_states) > 0)\n') in once.text
    assert 'if model_arch not in ["lfm2", "lfm2_moe"]:' in once.text  # the ssm check's list is another one
    assert not exempt_conv_state_check(once.text, "minimax").changed
    twice = exempt_conv_state_check(once.text, "other")
    assert 'if model_arch not in ["minimax", "other"]:' in twice.text and twice.text.count("conv_states") == 1


def test_a_file_without_the_check_is_an_error():
    with pytest.raises(EditError):
        exempt_conv_state_check("x = 1\n", "minimax")

from harness.stacks.workdir import FLOOR, SHARED_MEMORY, GiB, choose, estimated_need, tmpfs_free_bytes


def test_a_roomy_tmpfs_is_chosen():
    choice = choose(10_000, tmpfs_free=20 * GiB, temp_dir="/tmp")
    assert choice.path == str(SHARED_MEMORY)
    assert "20.0 GiB free" in choice.why


def test_the_temp_dir_when_the_run_would_eat_into_the_floor():
    rows = 5_000_000
    just_short = 2 * estimated_need(rows) + FLOOR - 1
    choice = choose(rows, tmpfs_free=just_short, temp_dir="/var/tmp")
    assert choice.path == "/var/tmp"
    assert "less than twice" in choice.why
    assert choose(rows, tmpfs_free=just_short + 1, temp_dir="/var/tmp").path == str(SHARED_MEMORY)


def test_the_temp_dir_without_a_tmpfs():
    choice = choose(10_000, tmpfs_free=None, temp_dir="/tmp")
    assert choice.path == "/tmp" and "no usable tmpfs" in choice.why


def test_a_directory_that_is_not_a_tmpfs_mount_has_no_tmpfs_room(tmp_path):
    assert tmpfs_free_bytes(tmp_path) is None


def test_more_rows_need_more_room():
    assert estimated_need(1_000_000) > estimated_need(10_000) >= GiB

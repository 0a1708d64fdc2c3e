"""The test rig that stays in the repository: test VPSes (``testvps``) and the developer
tasks behind ``inv`` (``devtasks``). Never shipped in the wheel."""

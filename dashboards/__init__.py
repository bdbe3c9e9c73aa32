"""The dashboards: a Dash app of shared graphs with every deploy and flag change drawn on them."""

from __future__ import annotations

import flask

from dashboards.data import Board

BOARD_EXTENSION = "shipboard_board"


def current_board() -> Board:
    """The Board of the app serving this request (pages and callbacks hold no globals)."""
    board: Board = flask.current_app.extensions[BOARD_EXTENSION]
    return board

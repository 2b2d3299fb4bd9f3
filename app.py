"""latent-lab explorer: `streamlit run app.py --server.address 127.0.0.1`.

Only the navigation: the pages are declared in ui/navigation.py, their scripts live in pages/, their
Streamlit helpers in ui/, everything they compute in explorer/.
"""
import streamlit as st

from ui.navigation import pages

st.navigation(pages()).run()

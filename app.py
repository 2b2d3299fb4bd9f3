"""latent-lab explorer: `streamlit run app.py --server.address 127.0.0.1`.

The pages live in pages/ and are registered explicitly here. Each page draws the sidebar's
checkpoint picker itself (pages.common.page_setup); its widgets keep their values across pages,
and the loaded model is shared through st.cache_resource.
"""
import streamlit as st

st.set_page_config(page_title="latent-lab explorer", layout="wide")
navigation = st.navigation(
    [
        st.Page("pages/generate.py", title="Generate & sliders", icon=":material/tune:", default=True),
        st.Page("pages/arithmetic.py", title="Vector arithmetic", icon=":material/functions:"),
        st.Page("pages/walks.py", title="Latent walks", icon=":material/timeline:"),
        st.Page("pages/feature_map.py", title="Feature map", icon=":material/scatter_plot:"),
        st.Page("pages/model.py", title="Model", icon=":material/monitoring:"),
    ]
)
navigation.run()
